// Rounds: when K updates are in (or the round timer fired with a quorum; swarm jobs: K from the live
// tasks, or the round's target time passed with a quorum, ./round-size.ts), the pending updates are aggregated, the DiLoCo outer step
// makes the next version, published as a compressed delta, and committed with the updates it applied (a
// conditional commit: only one closer of a round wins); then retention prunes old checkpoints and
// payloads. Evaluation and stopping rules follow the commit's event.
// The math (decode, fold, robust rule, outer step, publishing, hashes) runs on the pool's round lane
// (server/pool/round.ts), which reads the checkpoint and payloads from the store itself: this thread only
// routes the task and writes the rows; on SQLite the worker also writes the new version's large parts, under
// names of this attempt's own, which only a winning commit renames (the event loop inserts the row only).
// A worker that fails mid-round changed nothing stored: what it staged is removed here, the round stays
// open, its updates pending, and the next attempt (the sweep's, or the next upload's) closes it.
import type { FastifyBaseLogger } from 'fastify';
import { deltaCompression } from '../../shared/codec/version-delta.ts';
import { paramCount } from '../../shared/models/config.ts';
import type { Metrics } from '../metrics.ts';
import type { JobRow, RelayStore } from '../store/types.ts';
import { defaultRetention, keepFromForBytes, prunableUpTo, type Retention } from '../store/retention.ts';
import { PoolClosedError, type WorkPool } from '../pool/index.ts';
import { PREFOLD_MIN_PARAMS } from '../pool/prefold.ts';
import { computeRound, type RoundFault, type RoundOutcome, type RoundSpec } from '../pool/round.ts';
import type { RoundInputs } from '../store/round-inputs.ts';
import { isSwarm, swarmSettings, type SwarmPolicy } from './swarm.ts';
import { DILOCO_REPLICAS } from './outer-gain.ts';
import { createHash, randomBytes } from 'node:crypto';
import { monitorEventLoopDelay } from 'node:perf_hooks';

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
  /** tests only: a fault the round's worker injects mid-round (asked once per round close) */
  roundFault?: () => RoundFault | undefined;
  /** large models' updates decoded on arrival (prefold below); default on */
  prefold?: boolean;
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

  /** where rounds run (server/pool); without one (unit tests) inline */
  let pool: WorkPool | undefined;
  /** Jobs whose round is being closed here: the sweep asks every second, and a round on the pool takes
   * longer than that at 124M; a second close of the same round would only lose the conditional commit. */
  const closing = new Map<string, Promise<boolean>>();
  /** Jobs asked to close while a close ran: asked again once it ends. */
  const recheck = new Set<string>();

  /** Aggregates the pending updates into the next version when K are in, or the round timer fired with a quorum. */
  async function closeRound(jobId: string, byTimer: boolean): Promise<boolean> {
    const running = closing.get(jobId);
    if (running) {
      // this round is being closed already: answered when that close ends (a caller that awaits a close
      // sees its version), and asked again then, for updates that completed the next round meanwhile
      recheck.add(jobId);
      await running.catch(() => false);
      return false;
    }
    const p = close(jobId, byTimer);
    closing.set(jobId, p);
    try {
      return await p;
    } finally {
      closing.delete(jobId);
      if (recheck.delete(jobId)) scheduleRound(jobId);
    }
  }

  async function close(jobId: string, byTimer: boolean): Promise<boolean> {
    const job = await requireJob(jobId);
    if (job.status !== 'running') return false;
    const h = job.hyperparameters;
    const count = await store.countPendingUpdates(jobId);
    const t0 = now();
    const swarmJob = isSwarm(h);
    const live = swarmJob ? await store.countLiveTasks(jobId, t0) : 0;
    const k = swarmJob ? swarm.k(jobId, h, live) : h.updatesPerRound;
    if (swarmJob) {
      // K from the live tasks, or by time with a quorum, whoever calls (./round-size.ts)
      if (!swarm.due(jobId, h, count, live, t0 - job.roundStartedAt)) return false;
    } else {
      const timerDue = byTimer && count >= h.quorum && t0 - job.roundStartedAt >= h.roundTimeoutMs;
      if (count < h.updatesPerRound && !timerDue) return false;
    }
    // the updates being decoded ahead of this close: waited for, so it folds them decoded
    const ahead = prefolding.get(jobId);
    if (ahead?.size) await Promise.all([...ahead]);
    const stop = metrics.roundSeconds.startTimer();
    // Streaming: the pending updates are read one at a time and folded into bucket sums, so the round
    // holds O(buckets × P) whatever K (shared/aggregate/streaming.ts). Folding at the close, from the
    // store, keeps no round state in this process (a large model's updates decoded on arrival are only a
    // cache of it, ../pool/prefold.ts): a restart loses nothing, and relays sharing one database close a
    // round from what all of them accepted.
    const taskIds = await store.pendingUpdateIds(jobId);
    if (taskIds.length === 0) { stop(); return false; }
    // FedNova (Wang et al., arXiv 2007.07481): each Δ of a swarm round is divided by its own samples and
    // multiplied by the round's effective samples, the weighted mean of its updates' (./pool/round.ts folds
    // them so). Multiplied by the job's nominal instead, a round of short tasks was stretched to full ones:
    // the first round of a job, all new volunteers on 3-step first tasks of 20, moved the model as 6.7
    // times 3 steps of AdamW, whose first steps all go one way; the default MNIST job's held-out loss then
    // jumped past its guardrail, whose rollbacks struck and banned its honest volunteers within a minute.
    const effectiveSamples = swarmJob ? (await store.pendingMeanSamples(jobId)) ?? h.steps * h.batchSize : undefined;
    const spec: RoundSpec = {
      jobId, version: job.version, length: paramCount(job.model), taskIds,
      aggregator: h.aggregator, preAggregators: h.preAggregators, outerLr: h.outerLr, outerMomentum: h.outerMomentum,
      publish: deltaCompression(h.compression, h.versionCompression), nominalSamples: effectiveSamples, fault: o.roundFault?.(),
      // a big swarm round's step grows with how much averaging cut its noise (./outer-gain.ts)
      gain: swarmJob ? { kRef: Math.max(h.updatesPerRound, DILOCO_REPLICAS), max: swarmSettings(h).maxOuterGain } : undefined,
    };
    // the loop's own delay while the pool computes: the round's math should leave it free
    const lag = monitorEventLoopDelay({ resolution: 10 });
    lag.enable();
    let r: RoundOutcome;
    const p0 = performance.now();
    // this attempt's name for the files its worker stages: no other closer's files are ever at its paths
    const attempt = randomBytes(8).toString('hex');
    const version = job.version + 1;
    const discard = () => { try { store.discardStaged(jobId, version, attempt); } catch (e) { log.warn({ err: e, job: jobId, version }, 'a failed round attempt\'s staged files stay until the next start'); } };
    try {
      r = await compute(spec, attempt);
    } catch (e) {
      discard();
      throw e;
    } finally {
      lag.disable();
    }
    // what the pool call took beyond the worker's own stages: queueing, a thread's start, moving the results
    const dispatchMs = Math.max(0, performance.now() - p0 - Object.values(r.ms).reduce((a, b) => a + b, 0));
    metrics.roundLoopDelay.set({ job: jobId, stat: 'p99' }, lag.percentile(99) / 1e9);
    metrics.roundLoopDelay.set({ job: jobId, stat: 'max' }, lag.max / 1e9);
    // an update whose payload file is gone is discarded by the store as it reads it (and it says so)
    for (const id of r.lost) await store.pendingUpdate(id);
    if (r.applied.length === 0) { discard(); stop(); return false; } // their payloads were lost: nothing to apply
    metrics.roundAccumulators.set({ job: jobId }, r.live);
    metrics.roundPrefolded.set({ job: jobId }, r.prefolded);
    const c0 = performance.now();
    let committed = false;
    try {
      committed = await store.commitRound(jobId, {
        version, params: r.params, momentum: r.momentum, hash: r.hash,
        delta: { bytes: r.delta, sha256: r.deltaSha256 }, residual: r.residual,
        ...(r.staged && Object.keys(r.staged).length ? { staged: { attempt, parts: r.staged } } : {}),
      }, r.applied, now());
    } finally {
      if (!committed) discard();
    }
    const commitMs = performance.now() - c0;
    if (!committed) {
      // the job moved meanwhile (a rollback; another relay closed this round): nothing was written
      stop();
      log.info({ job: jobId, version }, 'round not committed: the job is no longer at its base version');
      return false;
    }
    for (const [stage, ms] of Object.entries({ ...r.ms, dispatch: dispatchMs, commit: commitMs })) metrics.roundStageSeconds.set({ job: jobId, stage }, ms / 1000);
    for (const [stage, ms] of Object.entries(r.cpuMs ?? {})) metrics.roundStageCpuSeconds.set({ job: jobId, stage }, ms / 1000);
    await prune(jobId, version, h.stalenessBound);
    stop();
    const trigger = count >= k ? 'k' : 'timer';
    metrics.rounds.inc({ job: jobId, trigger });
    metrics.version.set({ job: jobId }, version);
    metrics.roundSize.set({ job: jobId }, swarmJob ? r.applied.length : k); // a swarm round's K is what it took
    const last = lastClose.get(jobId) ?? job.roundStartedAt;
    metrics.roundTime.set({ job: jobId }, Math.max(0, t0 - last) / 1000);
    lastClose.set(jobId, t0);
    // the new version's evaluation and the stopping rules hear of it as the store's round-committed event
    log.info({ job: jobId, version, updates: r.applied.length, prefolded: r.prefolded, trigger, gain: r.gain, ms: { ...r.ms, dispatch: dispatchMs, commit: commitMs } }, 'round closed');
    return true;
  }

  /** Per job, the decodings ahead of a round (prefold below) still running or about to start: a close
   * waits for them, so it finds the updates decoded rather than racing the last upload's. */
  const prefolding = new Map<string, Set<Promise<void>>>();

  /** Intake is about to store an update of `length` parameters for the job. A large model's is then
   * decoded on the round lane, where its round's close finds it (../pool/prefold.ts): the close is then
   * mostly the robust rule and the outer step. Registered before the store's commit, since a close (the
   * sweep's) may start as soon as the commit lands; answers what to call once the update is stored (its
   * task id, to decode it) or not stored after all (nothing). */
  function storing(jobId: string, length: number): (taskId?: string) => void {
    if (!pool || o.prefold === false || length < PREFOLD_MIN_PARAMS) return () => undefined;
    const lane = pool;
    const src = store.paramsSource(jobId, 0);
    if (src instanceof Float32Array) return () => undefined;
    let finish!: () => void;
    const p = new Promise<void>((resolve) => { finish = resolve; });
    let mine = prefolding.get(jobId);
    if (!mine) prefolding.set(jobId, (mine = new Set()));
    const set = mine;
    set.add(p);
    void p.then(() => { set.delete(p); if (set.size === 0 && prefolding.get(jobId) === set) prefolding.delete(jobId); });
    return (taskId) => {
      if (taskId === undefined) { finish(); return; }
      lane.run({ kind: 'prefold', db: src.db, taskId, length }).catch((e: unknown) => {
        // the close reads and decodes it itself
        if (!(e instanceof PoolClosedError)) log.warn({ err: e, job: jobId, task: taskId }, 'decoding an update ahead of its round failed');
      }).finally(finish);
    };
  }

  /** The round's math: on the pool, which reads the store itself, or inline from the store (no pool). */
  async function compute(spec: RoundSpec, attempt: string): Promise<RoundOutcome> {
    const src = store.paramsSource(spec.jobId, spec.version);
    const output = store.roundOutput();
    if (pool && !(src instanceof Float32Array)) return pool.run({ kind: 'round', spec: output ? { ...spec, output: { ...output, attempt } } : spec, db: src.db });
    // inline a fault can only throw: an exit would end the relay
    return computeRound({ ...spec, fault: spec.fault && 'throw' }, storeInputs(store));
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

  return {
    scheduleRound, closeRound, storing,
    /** Closes rounds on this worker pool from now on. */
    usePool: (p: WorkPool): void => { pool = p; },
  };
}

/** A round's inputs through the store's own interface (rounds without a pool). */
const storeInputs = (store: RelayStore): RoundInputs => ({
  async checkpoint(jobId, version) {
    const v = await store.getVersion(jobId, version);
    if (!v) throw new Error(`version ${version} of job ${jobId} is no longer stored`);
    return v;
  },
  // the store discards an update whose payload is gone as it reads it: here that is one not pending
  pending: async (taskId) => { const u = await store.pendingUpdate(taskId); return u && { weight: u.weight, samples: u.samples, payload: u.payload }; },
  pendingMeta: async (taskId) => { const u = await store.pendingUpdate(taskId); return u && { weight: u.weight, samples: u.samples }; },
  close: () => undefined,
});
