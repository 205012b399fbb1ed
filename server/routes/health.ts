// GET /healthz (liveness + database reachability) and GET /metrics (Prometheus text).
import type { FastifyPluginAsync } from 'fastify';

export const healthRoutes: FastifyPluginAsync = async (app) => {
  app.get('/healthz', async () => {
    const jobs = (await app.stores.relay.listJobs());
    return { ok: true, jobs: jobs.length, running: jobs.filter((j) => j.status === 'running').length };
  });
  app.get('/metrics', async (_req, reply) => {
    reply.header('content-type', app.metrics.registry.contentType);
    return app.metrics.registry.metrics();
  });
};
