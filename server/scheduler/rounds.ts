// Rounds: when K updates are in (or the round timer fired with a quorum), the pending updates are
// aggregated, the DiLoCo outer step makes the next version, published as a compressed delta, and
// committed with the updates it applied (a conditional commit: only one closer of a round wins); then
// retention prunes old checkpoints and payloads. Evaluation and stopping rules follow the commit's event.
import { createHash } from 'node:crypto';
import type { FastifyBaseLogger } from 'fastify';
import { decodeUpdate } from '../../shared/codec/index.ts';
import { deltaCompression, publishVersion } from '../../shared/codec/version-delta.ts';
import { paramCount } from '../../shared/models/config.ts';
import type { Metrics } from '../metrics.ts';
import type { JobRow, RelayStore } from '../store/types.ts';
import { defaultRetention, prunableUpTo, type Retention } from '../store/retention.ts';
import { combine } from './combine.ts';
import { outerStep } from './outer-step.ts';

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
export const paramHash = (p: Float32Array): string => sha256(new Uint8Array(p.buffer, p.byteOffset, p.byteLength));

export type RoundsOptions = {
  store: RelayStore; log: FastifyBaseLogger; metrics: Metrics; now: () => number;
  requireJob: (jobId: string) => Promise<JobRow>;
  /** which checkpoints and update payloads outlive their round (default: defaultRetention) */
  retention?: Retention;
  later: (work: () => void) => void;
};

export function createRounds(o: RoundsOptions) {
  const { store, log, metrics, now, requireJob } = o;
  const scheduled = new Set<string>();

  /** Rounds close outside the request that completed them, so the uploader gets its answer at once. */
  function scheduleRound(jobId: string): void {
    if (scheduled.has(jobId)) return;
    scheduled.add(jobId);
    o.later(() => {
      scheduled.delete(jobId);
      closeRound(jobId, false).catch((e: unknown) => log.error({ err: e, job: jobId }, 'round failed'));
    });
  }

  /** Aggregates the pending updates into the next version when K are in, or the round timer fired with a quorum. */
  async function closeRound(jobId: string, byTimer: boolean): Promise<boolean> {
    const job = await requireJob(jobId);
    if (job.status !== 'running') return false;
    const h = job.hyperparameters;
    const count = await store.countPendingUpdates(jobId);
    const timerDue = byTimer && count >= h.quorum && now() - job.roundStartedAt >= h.roundTimeoutMs;
    if (count < h.updatesPerRound && !timerDue) return false;
    const stop = metrics.roundSeconds.startTimer();
    const pending = await store.pendingUpdates(jobId);
    const n = paramCount(job.model);
    // second copies of spot checks weigh 0 (see intake.ts); a round made of nothing else counts them after all
    const counted = pending.some((u) => u.weight > 0) ? pending.filter((u) => u.weight > 0) : pending.map((u) => ({ ...u, weight: 1 }));
    const delta = combine(h.aggregator, counted.map((u) => decodeUpdate(u.payload, n)), counted.map((u) => u.weight), job.version, h.preAggregators);
    const cur = (await store.getVersion(jobId, job.version))!;
    const next = outerStep(cur.params, cur.momentum, delta, h.outerLr, h.outerMomentum);
    const version = job.version + 1;
    // the new version is what its published delta gives (shared/codec/version-delta.ts): volunteers
    // download that delta instead of the whole model and rebuild these exact bits
    const residual = cur.residual ?? new Float32Array(n);
    const published = publishVersion(cur.params, next.params, residual, deltaCompression(h.compression));
    const committed = await store.commitRound(jobId, {
      version, params: published.params, momentum: next.momentum, hash: paramHash(published.params),
      delta: { bytes: published.delta, sha256: sha256(published.delta) }, residual,
    }, pending.map((u) => u.taskId), now());
    if (!committed) {
      // the job moved meanwhile (a rollback; another relay closed this round): nothing was written
      stop();
      log.info({ job: jobId, version }, 'round not committed: the job is no longer at its base version');
      return false;
    }
    await prune(jobId, version, h.stalenessBound);
    stop();
    const trigger = count >= h.updatesPerRound ? 'k' : 'timer';
    metrics.rounds.inc({ job: jobId, trigger });
    metrics.version.set({ job: jobId }, version);
    // the new version's evaluation and the stopping rules hear of it as the store's round-committed event
    log.info({ job: jobId, version, updates: pending.length, trigger }, 'round closed');
    return true;
  }

  /** Retention after a round (../store/retention.ts). A failure here costs disk, not the round. */
  async function prune(jobId: string, version: number, stalenessBound: number): Promise<void> {
    const r = o.retention ?? defaultRetention;
    try {
      const dropped = await store.pruneHistory(jobId, prunableUpTo(version, r, stalenessBound), r.keepEvery);
      if (dropped.checkpoints || dropped.payloads) log.debug({ job: jobId, version, ...dropped }, 'old checkpoints and payloads dropped');
    } catch (e) {
      log.warn({ err: e, job: jobId, version }, 'retention failed; old checkpoints and payloads stay for now');
    }
  }

  return { scheduleRound, closeRound };
}
