// Tokens (operators create and revoke them) and the audit log (operators read all of it, a researcher the
// entries about approved jobs and its own, never another's pending job or token names; anyone with a token can verify the chain).
import type { FastifyPluginAsync } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import { auditLimit, auditView, verifyChain } from './audit.ts';
import { actorOf, principalOf, requireRole } from './auth.ts';
import { OpsError } from './errors.ts';
import { createTokenIn, revokeTokenIn, ROLES } from './tokens.ts';

const TokenBody = Type.Object({
  role: Type.Union(ROLES.map((r) => Type.Literal(r))),
  name: Type.String({ minLength: 1, maxLength: 80, pattern: '^[^:]+$' }),
}, { additionalProperties: false });
const TokenParams = Type.Object({ tokenId: Type.String({ minLength: 1, maxLength: 64 }) });
const AuditQuery = Type.Object({
  after: Type.Optional(Type.Integer({ minimum: 0 })),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
  jobId: Type.Optional(Type.String({ maxLength: 128 })),
});

export const adminRoutes: FastifyPluginAsync = async (app) => {
  app.post<{ Body: Static<typeof TokenBody> }>('/api/ops/tokens', { schema: { body: TokenBody }, config: { body: 'json' } }, async (req, reply) => {
    const who = await requireRole(app, req, ['operator']);
    return reply.status(201).send(await createTokenIn(app.stores, { role: req.body.role, name: req.body.name, actor: actorOf(who) }));
  });
  app.get('/api/ops/tokens', async (req) => {
    await requireRole(app, req, ['operator']);
    return { tokens: await app.stores.ops.listTokens() };
  });
  app.delete<{ Params: Static<typeof TokenParams> }>('/api/ops/tokens/:tokenId', { schema: { params: TokenParams } }, async (req) => {
    const who = await requireRole(app, req, ['operator']);
    if (!(await revokeTokenIn(app.stores, req.params.tokenId, actorOf(who)))) throw new OpsError('TT_ERR_UNKNOWN_TOKEN', `no live token with id "${req.params.tokenId}"; list them with GET /api/ops/tokens`);
    return { revoked: req.params.tokenId };
  });

  app.get<{ Querystring: Static<typeof AuditQuery> }>('/api/ops/audit', { schema: { querystring: AuditQuery } }, async (req) => {
    // operators read the whole log; a researcher what listAudit's viewer allows (docs/jobs.md)
    const who = await principalOf(app, req);
    const viewer = who.role === 'operator' ? undefined : who.tokenId;
    return { entries: auditView(await app.stores.ops.listAudit({ afterSeq: req.query.after, limit: auditLimit(req.query.limit), jobId: req.query.jobId, visibleTo: viewer }), viewer) };
  });
  app.get('/api/ops/audit/verify', async (req) => {
    await principalOf(app, req);
    return verifyChain((after, limit) => app.stores.ops.auditRecords(after, limit));
  });
};
