// Who may see a job that is not approved yet: its researcher (their token) and operators, nobody else.
// A pending job is unreviewed content (name, description, uploaded data, model), so to everyone else it
// answers exactly as an unknown job would (404), on every read route that names a job: job info, evals,
// versions and params, shards, overview, ONNX downloads, the snapshot and the dashboard feed.
// Volunteer writes (lease, upload) keep their own answers: a pending job never gives out work.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { JobRow } from '../store/types.ts';
import { fail } from '../errors.ts';
import { findToken, type Principal } from './tokens.ts';

/** The request's principal when it carries a live token; undefined for anonymous (or a bad token:
 * public routes do not refuse it, they just show what anybody may see). */
export async function viewerOf(app: FastifyInstance, req: FastifyRequest): Promise<Principal | undefined> {
  const m = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '');
  return m ? findToken(app.stores.ops, m[1]) : undefined;
}

export async function mayView(app: FastifyInstance, viewer: Principal | undefined, job: Pick<JobRow, 'jobId' | 'status'>): Promise<boolean> {
  if (job.status !== 'pending') return true;
  if (!viewer) return false;
  return viewer.role === 'operator' || (await app.stores.ops.getOpsJob(job.jobId))?.ownerTokenId === viewer.tokenId;
}

/** Every GET route with a :jobId answers 404 for a pending job the requester may not see. */
export function installJobVisibility(app: FastifyInstance): void {
  app.addHook('preHandler', async (req) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return;
    const jobId = (req.params as { jobId?: unknown } | undefined)?.jobId;
    if (typeof jobId !== 'string') return;
    const job = await app.stores.relay.getJob(jobId);
    if (job && !(await mayView(app, await viewerOf(app, req), job))) fail('TT_ERR_UNKNOWN_JOB', jobId);
  });
}
