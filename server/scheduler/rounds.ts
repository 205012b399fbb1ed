// Rounds: when K updates are in (or the round timer fired with a quorum; swarm jobs: the round's target
// time passed with a quorum, ./round-size.ts), the pending updates are
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
import { defaultRetention, keepFromForBytes, prunableUpTo, type Retention } from '../store/retention.ts';
import { createRoundAccumulator, type RoundAccumulator } from '../../shared/aggregate/streaming.ts';
import { isSwarm, swarmSettings, type SwarmPolicy } from './swarm.ts';
import { DILOCO_REPLICAS, outerGain } from './outer-gain.ts';
import { outerStep } from './outer-step.ts';

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
export const paramHash = (p: Float32Array): string => sha256(new Uint8Array(p.buffer, p.byteOffset, p.byteLength));

export type RoundsOptions = {
  store: RelayStore; log: FastifyBaseLogger; metrics: Metrics; now: () => number;
  requireJob: (jobId: string) => Promise<JobRow>;
  /** which checkpoints and update payloads outlive their round (default: defaultRetention) */
  retention?: Retention;
  later: (work: () => void) => void;
  /** swarm jobs' round rule (./swarm.ts) */
  swarm: SwarmPolicy;
};

export function createRounds(o: RoundsOptions) {
  const { store, log, metrics, now, requireJob, swarm } = o;
  const scheduled = new Set<string>();
  /** When each job's last round closed, for the round-time gauge. */
  const lastClose = new Map<string, number>();

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
    const t0 = now();
    const swarmJob = isSwarm(h);
    const k = swarmJob ? swarm.k(jobId, h, t0) : h.updatesPerRound;
    if (swarmJob) {
      // by time with a quorum, whoever calls (./round-size.ts)
      if (!swarm.due(h, count, t0 - job.roundStartedAt)) return false;
    } else {
      const timerDue = byTimer && count >= h.quorum && t0 - job.roundStartedAt >= h.roundTimeoutMs;
      if (count < h.updatesPerRound && !timerDue) return false;
    }
    const stop = metrics.roundSeconds.startTimer();
    const n = paramCount(job.model);
    // Streaming: the pending updates are read one at a time and folded into bucket sums, so the round
    // holds O(buckets × P) whatever K (shared/aggregate/streaming.ts). Folding at the close, from the
    // store, rather than on arrival keeps no round state in this process: a restart loses nothing, and
    // relays sharing one database close a round from what all of them accepted.
    // Second copies of spot checks weigh 0 (see intakeUpdate); a round made of nothing else counts them after all.
    const pending: string[] = [];
    let acc = await foldPending(job, pending, false);
    if (acc.counted === 0) acc = await foldPending(job, [], true);
    if (pending.length === 0) { stop(); return false; } // their payloads were lost: nothing to apply
    const delta = acc.close(h.aggregator, { preAggregators: h.preAggregators });
    // a big swarm round's step grows with how much averaging cut its noise (./outer-gain.ts)
    const gain = swarmJob ? outerGain(acc.spread(), Math.max(h.updatesPerRound, DILOCO_REPLICAS), swarmSettings(h).maxOuterGain) : 1;
    if (gain !== 1) for (let i = 0; i < delta.length; i++) delta[i] *= gain;
    metrics.roundAccumulators.set({ job: jobId }, acc.live);
    const cur = (await store.getVersion(jobId, job.version))!;
    const next = outerStep(cur.params, cur.momentum, delta, h.outerLr, h.outerMomentum);
    const version = job.version + 1;
    // the new version is what its published delta gives (shared/codec/version-delta.ts): volunteers
    // download that delta instead of the whole model and rebuild these exact bits
    const residual = cur.residual ?? new Float32Array(n);
    const published = publishVersion(cur.params, next.params, residual, deltaCompression(h.compression, h.versionCompression));
    const committed = await store.commitRound(jobId, {
      version, params: published.params, momentum: next.momentum, hash: paramHash(published.params),
      delta: { bytes: published.delta, sha256: sha256(published.delta) }, residual,
    }, pending, now());
    if (!committed) {
      // the job moved meanwhile (a rollback; another relay closed this round): nothing was written
      stop();
      log.info({ job: jobId, version }, 'round not committed: the job is no longer at its base version');
      return false;
    }
    await prune(jobId, version, h.stalenessBound);
    stop();
    const trigger = count >= k ? 'k' : 'timer';
    metrics.rounds.inc({ job: jobId, trigger });
    metrics.version.set({ job: jobId }, version);
    metrics.roundSize.set({ job: jobId }, swarmJob ? pending.length : k); // a swarm round's K is what it took
    const last = lastClose.get(jobId) ?? job.roundStartedAt;
    metrics.roundTime.set({ job: jobId }, Math.max(0, t0 - last) / 1000);
    lastClose.set(jobId, t0);
    // the new version's evaluation and the stopping rules hear of it as the store's round-committed event
    log.info({ job: jobId, version, updates: pending.length, trigger, gain }, 'round closed');
    return true;
  }

  /** The job's pending updates folded into a round accumulator, one payload at a time; `ids` collects
   * their task ids. `all`: every update at weight 1 (a round of spot-check second copies only).
   * Tasks of different H (swarm jobs) are folded as FedNova does (Wang et al., NeurIPS'20, arXiv
   * 2007.07481): each Δ divided by its own steps and multiplied by the job's nominal H, weighted by its
   * samples (and staleness). Averaged raw, a 40-step Δ is 8× a 5-step one and its weight 8× too: the round's
   * step was then set by the fastest devices and the outer momentum carried it past the minimum (measured:
   * 31 % held-out accuracy where fixed H reached 88 % at equal samples, bench/swarm.ts). */
  async function foldPending(job: JobRow, ids: string[], all: boolean): Promise<RoundAccumulator> {
    const h = job.hyperparameters, n = paramCount(job.model);
    const nominal = h.steps * h.batchSize;
    const acc = createRoundAccumulator(n, { seed: job.version });
    for (const id of await store.pendingUpdateIds(job.jobId)) {
      const u = await store.pendingUpdate(id);
      if (!u) continue; // its payload was lost: discarded
      ids.push(u.taskId);
      if (!all && !(u.weight > 0)) continue;
      const x = decodeUpdate(u.payload, n);
      const k = isSwarm(h) && u.samples > 0 ? nominal / u.samples : 1;
      if (k !== 1) for (let i = 0; i < x.values.length; i++) x.values[i] *= k;
      acc.fold(x, all ? 1 : u.weight);
    }
    return acc;
  }

  /** Retention after a round (../store/retention.ts). A failure here costs disk, not the round. */
  async function prune(jobId: string, version: number, stalenessBound: number): Promise<void> {
    const r = o.retention ?? defaultRetention;
    try {
      const dropped = await store.pruneHistory(jobId, prunableUpTo(version, r, stalenessBound), r.keepEvery);
      if (dropped.checkpoints || dropped.payloads) log.debug({ job: jobId, version, ...dropped }, 'old checkpoints and payloads dropped');
      if (r.keepBytes !== undefined) {
        const byBytes = await store.pruneBytes(jobId, r.keepBytes, keepFromForBytes(version, stalenessBound));
        if (byBytes.checkpoints) log.debug({ job: jobId, version, ...byBytes }, 'old checkpoints dropped to keep the job under --keep-bytes');
      }
    } catch (e) {
      log.warn({ err: e, job: jobId, version }, 'retention failed; old checkpoints and payloads stay for now');
    }
  }

  return { scheduleRound, closeRound };
}
