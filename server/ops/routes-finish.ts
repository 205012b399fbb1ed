// Done jobs: an operator extends a done job's budget (POST …/extend with a new `until`: it resumes from its
// released version), and anyone downloads a version as safetensors beside the ONNX download
// (GET …/versions/:version/model.safetensors). Stopping itself is the scheduler's (server/scheduler/stopping.ts).
import type { FastifyPluginAsync } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import { exportSafetensors } from '../../shared/export/safetensors.ts';
import { checkUntil } from '../scheduler/stopping.ts';
import { missingVersionMessage } from '../store/retention.ts';
import { actorOf, requireRole } from './auth.ts';
import { OpsError } from './errors.ts';

const JobParams = Type.Object({ jobId: Type.String({ minLength: 1, maxLength: 128 }) });
const VersionParams = Type.Object({ jobId: Type.String({ minLength: 1, maxLength: 128 }), version: Type.Integer({ minimum: 0 }) });
// until is checked by checkUntil, so a refusal names its field (until.plateau.evals, …)
const ExtendBody = Type.Object({ until: Type.Unknown() }, { additionalProperties: false });
const FinishBody = Type.Object({ reason: Type.Optional(Type.String({ minLength: 1, maxLength: 500 })) }, { additionalProperties: false });

export const finishRoutes: FastifyPluginAsync = async (app) => {
  // An operator ends a running or paused job by hand: the same finish as a stopping rule's (best version released).
  app.post<{ Params: Static<typeof JobParams>; Body: Static<typeof FinishBody> }>('/api/ops/jobs/:jobId/finish', {
    schema: { params: JobParams, body: FinishBody }, config: { body: 'json' },
  }, async (req) => {
    const who = await requireRole(app, req, ['operator']);
    const job = await app.stores.relay.getJob(req.params.jobId);
    if (!job) throw new OpsError('TT_ERR_UNKNOWN_JOB', `no job with id "${req.params.jobId}"`);
    if (job.status !== 'running' && job.status !== 'paused') throw new OpsError('TT_ERR_BAD_TRANSITION', `job ${job.jobId} is ${job.status}; finish applies to a running or paused job`);
    const f = await app.scheduler.stopping.finish(job.jobId, { rule: 'operator', reason: req.body?.reason ?? 'ended by an operator' }, actorOf(who));
    return { jobId: job.jobId, status: 'done', finish: f };
  });

  app.post<{ Params: Static<typeof JobParams>; Body: Static<typeof ExtendBody> }>('/api/ops/jobs/:jobId/extend', {
    schema: { params: JobParams, body: ExtendBody }, config: { body: 'json' },
  }, async (req) => {
    const who = await requireRole(app, req, ['operator']);
    const { jobId } = req.params;
    if (!(await app.stores.relay.getJob(jobId))) throw new OpsError('TT_ERR_UNKNOWN_JOB', `no job with id "${jobId}"`);
    if (req.body.until === undefined) throw new OpsError('TT_ERR_JOB_SPEC', 'until: is required (the new stopping rule, see docs/jobs.md)', 'until');
    const r = await app.scheduler.stopping.extend(jobId, checkUntil(req.body.until), actorOf(who));
    return { jobId, status: 'running', version: r.version, until: r.until };
  });

  app.get<{ Params: Static<typeof VersionParams> }>('/api/ops/jobs/:jobId/versions/:version/model.safetensors', { schema: { params: VersionParams } }, async (req, reply) => {
    const job = await app.scheduler.requireJob(req.params.jobId);
    const v = await app.stores.relay.getParams(job.jobId, req.params.version);
    if (!v) throw new OpsError('TT_ERR_UNKNOWN_VERSION', `version: ${missingVersionMessage(job.jobId, req.params.version, job.version, await app.stores.relay.listVersions(job.jobId))}`, 'version');
    const bytes = exportSafetensors(job.model, v.params, { format: 'pt', job: job.jobId, version: String(req.params.version), sha256: v.hash, model: JSON.stringify(job.model) });
    return reply.header('content-type', 'application/octet-stream')
      .header('content-disposition', `attachment; filename="${job.jobId}-v${req.params.version}.safetensors"`)
      .header('x-tabtrain-hash', v.hash)
      .send(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  });
};
