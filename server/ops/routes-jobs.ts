// Researchers' and operators' job routes: submit (multipart: "spec" = job.json text, "data" = dataset
// file), list, approve (operators only), pause, resume, rollback (operators, or the job's researcher).
// Each state change and its audit entry are written in one transaction.
import type { FastifyPluginAsync } from 'fastify';
import multipart from '@fastify/multipart';
import { Type, type Static } from '@sinclair/typebox';
import { LIMITS } from '../../shared/jobs/spec.ts';
import type { JobStatus } from '../../shared/protocol/messages.ts';
import type { AuditAction } from './audit.ts';
import { actorOf, principalOf, requireJobActor, requireRole } from './auth.ts';
import { OpsError } from './errors.ts';
import { createSubmitLimits, submitJob } from './submit.ts';
import { missingVersionMessage } from '../store/retention.ts';

const JobParams = Type.Object({ jobId: Type.String({ minLength: 1, maxLength: 128 }) });
const RollbackBody = Type.Object({ version: Type.Integer({ minimum: 0, description: 'the version to make current again' }) }, { additionalProperties: false });

export const jobOpsRoutes: FastifyPluginAsync = async (app) => {
  await app.register(multipart, { limits: { fileSize: LIMITS.datasetBytes, files: 1, fields: 4, fieldSize: 64 * 1024 } });
  const submitLimits = createSubmitLimits();
  // a refusal that says when to come back says it in Retry-After too
  app.addHook('onError', async (_req, reply, err: Error & { retryAfterSeconds?: number }) => {
    if (err instanceof OpsError && err.retryAfterSeconds !== undefined) reply.header('retry-after', String(err.retryAfterSeconds));
  });

  app.post('/api/ops/jobs', { bodyLimit: LIMITS.datasetBytes + 256 * 1024 }, async (req, reply) => {
    const who = await requireRole(app, req, ['researcher', 'operator']);
    if (!req.isMultipart()) throw new OpsError('TT_ERR_JOB_SPEC', 'send multipart/form-data with a "spec" field (job.json) and a "data" file', 'spec');
    let specText: string | undefined, data: Uint8Array | undefined;
    try {
      for await (const part of req.parts()) {
        if (part.type === 'file') {
          if (part.fieldname !== 'data') throw new OpsError('TT_ERR_JOB_SPEC', `${part.fieldname}: is not a known file field; attach the dataset as "data"`, part.fieldname);
          data = new Uint8Array(await part.toBuffer());
        } else if (part.fieldname === 'spec') specText = String(part.value);
      }
    } catch (e) {
      const code = (e as { code?: string }).code;
      if (code === 'FST_REQ_FILE_TOO_LARGE' || code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
        throw new OpsError('TT_ERR_DATASET_TOO_LARGE', `dataset: the upload is over the ${LIMITS.datasetBytes}-byte limit; use a smaller file`, 'dataset');
      }
      throw e;
    }
    return reply.status(201).send(await submitJob(app, who, specText, data, submitLimits));
  });

  // Operators see every job; researchers see their own.
  app.get('/api/ops/jobs', async (req) => {
    const who = await principalOf(app, req);
    const jobs = await Promise.all((await app.stores.relay.listJobs()).map(async (j) => ({ jobId: j.jobId, name: j.name, status: j.status, version: j.version, researcher: j.researcher, owner: (await app.stores.ops.getOpsJob(j.jobId))?.ownerTokenId ?? null, createdAt: j.createdAt })));
    return { jobs: who.role === 'operator' ? jobs : jobs.filter((j) => j.owner === who.tokenId) };
  });

  const transition = (action: AuditAction, from: JobStatus[], to: JobStatus, operatorOnly: boolean) =>
    async (req: { params: Static<typeof JobParams> } & Parameters<typeof principalOf>[1]) => {
      const { jobId } = req.params;
      const who = operatorOnly ? await requireRole(app, req, ['operator']) : await requireJobActor(app, req, jobId);
      const job = await app.stores.relay.getJob(jobId);
      if (!job) throw new OpsError('TT_ERR_UNKNOWN_JOB', `no job with id "${jobId}"`);
      if (!from.includes(job.status)) throw new OpsError('TT_ERR_BAD_TRANSITION', `job ${jobId} is ${job.status}; ${action.slice(4)} applies to a ${from.join(' or ')} job`);
      const row = await app.stores.transaction(async (tx) => {
        const now = Date.now();
        const r = await tx.relay.setJobStatus(jobId, to, now);
        await tx.ops.appendAudit({ actor: actorOf(who), action, jobId, detail: { from: job.status, to, version: job.version } }, now);
        return r;
      });
      app.log.info({ job: jobId, by: who.tokenId }, `job ${action.slice(4)}: ${job.status}=>${to}`);
      return { jobId, status: row.status, version: row.version };
    };

  app.post<{ Params: Static<typeof JobParams> }>('/api/ops/jobs/:jobId/approve', { schema: { params: JobParams } }, transition('job.approve', ['pending'], 'running', true));
  app.post<{ Params: Static<typeof JobParams> }>('/api/ops/jobs/:jobId/pause', { schema: { params: JobParams } }, transition('job.pause', ['running'], 'paused', false));
  app.post<{ Params: Static<typeof JobParams> }>('/api/ops/jobs/:jobId/resume', { schema: { params: JobParams } }, transition('job.resume', ['paused'], 'running', false));

  app.post<{ Params: Static<typeof JobParams>; Body: Static<typeof RollbackBody> }>('/api/ops/jobs/:jobId/rollback', {
    schema: { params: JobParams, body: RollbackBody },
  }, async (req) => {
    const { jobId } = req.params;
    const who = await requireJobActor(app, req, jobId);
    const job = (await app.stores.relay.getJob(jobId))!;
    const { version } = req.body;
    if (version > job.version) throw new OpsError('TT_ERR_UNKNOWN_VERSION', `version: job ${jobId} is at version ${job.version}; roll back to ${job.version} or earlier`, 'version');
    if (!(await app.stores.relay.versionHash(jobId, version))) throw new OpsError('TT_ERR_UNKNOWN_VERSION', `version: ${missingVersionMessage(jobId, version, job.version, await app.stores.relay.listVersions(jobId))}`, 'version');
    const row = await app.stores.transaction(async (tx) => {
      const now = Date.now();
      const r = await tx.relay.rollback(jobId, version, now);
      // Leases on dropped versions can never be accepted; ending them now frees their slots in the round
      // instead of blocking new work until they expire.
      const leasesEnded = await tx.relay.endLeases(jobId, version);
      await tx.ops.appendAudit({ actor: actorOf(who), action: 'job.rollback', jobId, detail: { from: job.version, to: version, hash: await tx.relay.versionHash(jobId, version), leasesEnded } }, now);
      return r;
    });
    app.log.info({ job: jobId, by: who.tokenId }, `job rolled back: version ${job.version}=>${version}`);
    return { jobId, status: row.status, version: row.version };
  });
};

