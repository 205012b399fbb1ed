// Bearer-token authentication and the two rules of authorisation: some actions are the operators'
// alone, and a researcher acts only on jobs it submitted. 401 = no or unknown token; 403 = known, not allowed.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { OpsError } from './errors.ts';
import { findToken, type Principal, type Role } from './tokens.ts';

export async function principalOf(app: FastifyInstance, req: FastifyRequest): Promise<Principal> {
  const h = req.headers.authorization;
  if (!h) throw new OpsError('TT_ERR_UNAUTHENTICATED', 'this route needs an API token: send "Authorization: Bearer <token>" (an operator creates one with `tabtrain token create`)');
  const m = /^Bearer\s+(\S+)$/i.exec(h);
  if (!m) throw new OpsError('TT_ERR_UNAUTHENTICATED', 'the Authorization header must be "Bearer <token>"');
  const p = await findToken(app.stores.ops, m[1]);
  if (!p) throw new OpsError('TT_ERR_UNAUTHENTICATED', 'the API token is unknown or revoked; ask an operator for a new one');
  return p;
}

export async function requireRole(app: FastifyInstance, req: FastifyRequest, roles: readonly Role[]): Promise<Principal> {
  const p = await principalOf(app, req);
  if (!roles.includes(p.role)) throw new OpsError('TT_ERR_FORBIDDEN', `this action needs the ${roles.join(' or ')} role; your token is a ${p.role} token`);
  return p;
}

/** Operator routes that read with a token; every other method under /api/ops/ writes and needs one too. */
const TOKEN_READS = new Set(['/api/ops/tokens', '/api/ops/audit', '/api/ops/audit/verify', '/api/ops/jobs']);

/** Whether a route needs a token before anything else: its config.token when set, else the rule above. */
export function needsToken(req: FastifyRequest): boolean {
  const url = req.routeOptions.url;
  if (url === undefined) return false; // no route: the 404 handler answers
  const declared = req.routeOptions.config.token;
  if (declared !== undefined) return declared;
  if (!url.startsWith('/api/ops/')) return false;
  return !['GET', 'HEAD', 'OPTIONS'].includes(req.method) || TOKEN_READS.has(url);
}

/** Checks the token in onRequest, before the body is read or anything is validated: a request without a
 * valid token gets 401 and no say in how its body is parsed (a bad body must not earn 400 first, nor make
 * the relay read a large upload for nobody). Routes still check roles themselves. */
export function authenticateFirst(app: FastifyInstance): void {
  app.addHook('onRequest', async (req) => {
    if (needsToken(req)) await principalOf(app, req);
  });
}

/** An operator, or the researcher who submitted the job. */
export async function requireJobActor(app: FastifyInstance, req: FastifyRequest, jobId: string): Promise<Principal> {
  const p = await principalOf(app, req);
  const job = await app.stores.relay.getJob(jobId);
  if (!job) throw new OpsError('TT_ERR_UNKNOWN_JOB', `no job with id "${jobId}"`);
  if (p.role === 'operator') return p;
  const owner = (await app.stores.ops.getOpsJob(jobId))?.ownerTokenId;
  // someone else's unapproved job is not theirs to know about (./visibility.ts): unknown, not forbidden
  if (owner !== p.tokenId && job.status === 'pending') throw new OpsError('TT_ERR_UNKNOWN_JOB', `no job with id "${jobId}"`);
  if (owner !== p.tokenId) throw new OpsError('TT_ERR_FORBIDDEN', `job ${jobId} belongs to another researcher; a researcher may act only on jobs it submitted`);
  return p;
}

/** How the audit log names a principal: role and token id (never the secret). */
export const actorOf = (p: Principal) => `${p.role}:${p.name}:${p.tokenId}`;
