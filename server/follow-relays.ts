// What a relay on a shared database updates when another relay changes something (LISTEN/NOTIFY,
// server/store/postgres/notify.ts): its own Prometheus gauges of job versions, so every relay's /metrics
// agrees. The dashboard feed, job pages and task answers read the database on each request and agree
// already. Work that follows a change (audit entry, evaluation, guardrail, stopping rule) stays with the
// relay that made it; nothing here repeats it.
import type { FastifyBaseLogger } from 'fastify';
import type { Metrics } from './metrics.ts';
import type { PostgresStores } from './store/postgres/index.ts';

export function followOtherRelays(stores: PostgresStores, metrics: Metrics, log: FastifyBaseLogger): () => void {
  const resync = async () => {
    for (const j of await stores.relay.listJobs()) metrics.version.set({ job: j.jobId }, j.version);
  };
  return stores.remote.on((e) => {
    switch (e.name) {
      case 'round-committed': metrics.version.set({ job: e.event.jobId }, e.event.version); break;
      case 'rolled-back': metrics.version.set({ job: e.event.jobId }, e.event.to); break;
      case 'job-created': metrics.version.set({ job: e.event.jobId }, 0); break;
      // notices were lost while the listener was away: read the versions again
      case 'resync': resync().catch((err: unknown) => log.warn({ err }, 'could not re-read job versions after the event listener reconnected')); break;
      default: break;
    }
  });
}
