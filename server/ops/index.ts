// The operator plugin: API tokens and roles, job submission with dataset upload, approve/pause/resume/
// rollback, the loss-regression guardrail, the hash-chained audit log, the dashboard feed and extra
// Prometheus metrics. Registered by server/app.ts after the stores and scheduler exist; its state is the
// stores' ops facet (server/store/ops-types.ts), the relay's is only read or changed through app.stores.
import fp from 'fastify-plugin';
import type { FastifyPluginAsync } from 'fastify';
import { installDatasetResolver } from './datasets.ts';
import { countTraffic, feedPlugin } from './feed.ts';
import { installStoreHooks } from './hooks.ts';
import { adminRoutes } from './routes-admin.ts';
import { jobOpsRoutes } from './routes-jobs.ts';
import { modelRoutes } from './routes-models.ts';
import { finishRoutes } from './routes-finish.ts';
import { estimateRoutes } from './routes-estimate.ts';
import { ACTIVE_MS, WINDOW_MS } from './snapshot.ts';
import { createTallies } from './tallies.ts';
import { installJobVisibility } from './visibility.ts';

const ops: FastifyPluginAsync = async (app) => {
  await installDatasetResolver(app);
  installStoreHooks(app);
  // a GPT job's held-out text is a submitted dataset, stored here; the scheduler evaluates on it
  app.scheduler.useHeldOutText((jobId) => app.stores.ops.loadHeldOut(jobId));
  installJobVisibility(app);
  // Traffic is counted on the root context (fastify-plugin), so the relay's own routes count too.
  const traffic = countTraffic(app);
  // running totals of tasks and updates, shared by the dashboard feed and the job pages
  const tallies = createTallies(app.stores.relay, { windowMs: WINDOW_MS, activeMs: ACTIVE_MS });
  await app.register(adminRoutes);
  await app.register(jobOpsRoutes);
  await app.register(modelRoutes(tallies));
  await app.register(finishRoutes);
  await app.register(estimateRoutes);
  await app.register(feedPlugin(traffic, tallies));
};

export default fp(ops, { name: 'tabtrain-ops' });
