// GET /healthz (liveness + database reachability) and GET /metrics (Prometheus text).
import type { FastifyPluginAsync } from 'fastify';
import { errors } from '../errors.ts';
import { DATABASE_DOWN } from '../store/unavailable.ts';

export const healthRoutes: FastifyPluginAsync = async (app) => {
  app.get('/healthz', async (_req, reply) => {
    const t0 = performance.now();
    const down = await app.database.ping().then(() => undefined, (e: Error) => e);
    const database = { kind: app.database.kind, reachable: !down, ms: Math.round((performance.now() - t0) * 10) / 10 };
    if (down) {
      app.log.warn({ err: down }, 'health check: database unavailable');
      // 503: a load balancer sends volunteers elsewhere, and this relay keeps probing until it answers again
      reply.header('retry-after', '5');
      return reply.status(503).send({
        ok: false, database,
        error: { code: 'TT_ERR_DATABASE_UNAVAILABLE', message: errors.TT_ERR_DATABASE_UNAVAILABLE.message(DATABASE_DOWN) },
      });
    }
    const jobs = await app.stores.relay.listJobs();
    return { ok: true, database, jobs: jobs.length, running: jobs.filter((j) => j.status === 'running').length };
  });
  app.get('/metrics', async (_req, reply) => {
    reply.header('content-type', app.metrics.registry.contentType);
    return app.metrics.registry.metrics();
  });
};
