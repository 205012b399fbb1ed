// POST /api/jobs/:jobId/tasks: lease a task, or 204 + Retry-After when the round has all its work out.
import type { FastifyPluginAsync } from 'fastify';
import { requireAdapterFit } from './adapter-fit.ts';
import { countRefusals, errorResponses } from './common.ts';
import { JobParams, RelaySendsTask, VolunteerSendsTaskRequest, type Static } from './schemas.ts';

/** How soon a volunteer told "no work now" should ask again. */
export const NO_WORK_RETRY_MS = 250;

export const taskRoutes: FastifyPluginAsync = async (app) => {
  countRefusals(app);
  app.post<{ Params: Static<typeof JobParams>; Body: Static<typeof VolunteerSendsTaskRequest> }>('/api/jobs/:jobId/tasks', {
    config: { body: 'json', protocol: true },
    schema: { params: JobParams, body: VolunteerSendsTaskRequest, response: { 200: RelaySendsTask, ...errorResponses } },
  }, async (req, reply) => {
    const t = app.now();
    // the relay's clock, even on a refusal: a volunteer signs its requests with this time
    reply.header('x-tabtrain-time', String(t));
    await app.scheduler.guard.limit('tasksPerAddress', req.ip, t);
    const job = await app.scheduler.requireJob(req.params.jobId); // an unknown job is named before any signature is checked
    const header = (name: string) => { const v = req.headers[name]; return typeof v === 'string' ? v : undefined; };
    await app.scheduler.guard.verifyTaskRequest(req.body.volunteerId, req.params.jobId, header('x-tabtrain-signature'), header('x-tabtrain-time'), t);
    await app.scheduler.guard.limit('tasksPerIdentity', req.body.volunteerId, t);
    requireAdapterFit(job, req.body.adapter);
    const task = await app.scheduler.leaseTask(req.params.jobId, req.body.volunteerId, req.ip, req.body.shards);
    if (!task) {
      const paused = (await app.stores.relay.getJob(req.params.jobId))?.status === 'paused';
      return reply.status(204).header('retry-after', paused ? '5' : '1').header('x-tabtrain-retry-ms', String(paused ? 5000 : NO_WORK_RETRY_MS))
        .header('x-tabtrain-job-status', paused ? 'paused' : 'running').send();
    }
    return task;
  });
};
