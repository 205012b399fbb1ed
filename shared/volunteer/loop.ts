// The ONE volunteer loop, shared by the browser tab's worker, the Node volunteer and the simulated
// volunteers of the tests. No DOM, no Node APIs: fetch, trainer and storage are injected.
//   register → lease a task → params of its base version (cached by hash, or rebuilt from published
//   deltas: ./params.ts) → shard (cached)
//   → H inner steps on batches drawn from (seed, step) → Δ → encode with error feedback → upload.
// Pipelined so the device does not wait on the network: while task i trains, task i+1 is leased and
// its params and shard fetched (late in task i, so the lease is not held longer than needed), and task
// i−1's update is encoded and uploaded. Encoding stays in task order, one upload at a time, so the
// error-feedback residual is folded task after task.
import { encodeUpdate } from '../codec/index.ts';
import { decodeTaskData, taskBatch, type TaskData } from '../data/task-data.ts';
import { adapterProblem, type AdapterLimits } from '../engine/memory-plan.ts';
import type { ModelConfig } from '../models/config.ts';
import { encodeUpdateFrame } from '../protocol/frame.ts';
import type { AnyErrorCode, ErrorCode } from '../protocol/errors.ts';
import type { Task } from '../protocol/messages.ts';
import { loadOrCreateIdentity, signTaskRequest, signUpdate, type Identity } from '../security/identity.ts';
import { solvePow } from '../security/pow.ts';
import type { Trainer, TrainOptions } from '../train/trainer.ts';
import { RelayClient, RelayHttpError, sleep, type FetchLike, type RetryPolicy } from './client.ts';
import type { Phase, VolunteerEvent } from './events.ts';
import { paramsFor } from './params.ts';
import { pieceFetcher, type PeerSource } from './pieces.ts';
import { shardSource } from './shards.ts';
import { prefetchDue } from './pipeline.ts';
import { keepResidual } from './residual-age.ts';
import type { LoopStore } from './store.ts';

export type { Phase, VolunteerEvent } from './events.ts';
export type { LoopStore } from './store.ts';

export type VolunteerOptions = {
  /** relay base URL, e.g. http://127.0.0.1:8080; or several relays of one network (sharing a database),
   * in order of preference: when one stops answering the loop goes on with the next (RelayClient) */
  server: string | readonly string[];
  fetch: FetchLike;
  createTrainer: (model: ModelConfig, opts: TrainOptions) => Trainer | Promise<Trainer>;
  store: LoopStore;
  /** other volunteers to take params, deltas and shards from before the relay (a tab's WebRTC peers) */
  peers?: PeerSource;
  signal: AbortSignal;
  onEvent?: (e: VolunteerEvent) => void;
  /** job to work on; default: the first running job the relay lists */
  jobId?: string;
  agent?: string;
  device?: string;
  retry?: RetryPolicy;
  /** stop after this many uploaded updates (tests, benchmarks); default: run until aborted */
  maxTasks?: number;
  /** a relay that has not begun to answer within this is taken as down (RelayClient; default 30 s) */
  answerTimeoutMs?: number;
  /** this machine's clock (default Date.now); lease deadlines are compared with the relay's, learned from its answers */
  now?: () => number;
  /** the limits of the adapter createTrainer trains on (absent on the CPU): sent with every task request
   * so the relay leases only what fits, and checked against each task's memory plan before its params
   * and shard are downloaded */
  adapter?: AdapterLimits;
};

/** Codes that end a task but not the loop. */
const DROP_CODES: ReadonlySet<AnyErrorCode> = new Set<ErrorCode>(['TT_ERR_LEASE_EXPIRED', 'TT_ERR_LEASE_USED', 'TT_ERR_TOO_STALE', 'TT_ERR_UNKNOWN_TASK', 'TT_ERR_JOB_NOT_RUNNING', 'TT_ERR_SIGNATURE']);
const IDLE_MS = 2_000;
/** With no running job anywhere, asks again ever less often, up to this (the tab holds no device meanwhile). */
const NO_JOB_MAX_MS = 30_000;

/** A leased task with everything it needs to start training at once. */
type Ready = { task: Task; params: Float32Array; shard: TaskData };
/** A trained task whose update is still to be encoded and uploaded. */
type Trained = { task: Task; volunteerId: string; delta: Float32Array; losses: number[]; computeMs: number };

/** Runs until the signal aborts (resolves quietly) or maxTasks updates are uploaded. */
export async function runVolunteer(o: VolunteerOptions): Promise<void> {
  const emit = (e: VolunteerEvent) => { try { o.onEvent?.(e); } catch { /* a UI bug must not stop training */ } };
  let state: Phase | undefined;
  const setState = (s: Phase, detail?: string) => { if (s !== state || detail) { state = s; emit({ type: 'state', state: s, detail }); } };
  const client = new RelayClient(o.server, o.fetch, {
    signal: o.signal, retry: o.retry, now: o.now, answerTimeoutMs: o.answerTimeoutMs,
    onRetry: (what, attempt, delayMs, reason) => emit({ type: 'retry', what, attempt, delayMs, reason }),
    onFailover: (from, to, reason) => emit({ type: 'failover', from, to, reason }),
  });
  /** Where identity and volunteer id are kept: the first relay's name (the id derives from the key, so it
   * is the same on every relay of the network; a relay that does not know it yet is registered with). */
  const home = typeof o.server === 'string' ? o.server : o.server[0] ?? '';
  const shards = new Map<string, TaskData>();
  const pieces = pieceFetcher(o.peers);
  const shardBytes = shardSource(client, o.store, pieces, o.peers !== undefined);
  let trainer: { key: string; t: Trainer } | undefined;
  let uploaded = 0;

  // the signing identity: kept in the store when it can hold keys, else for this run only
  let ephemeral: CryptoKeyPair | undefined;
  let identity: Identity | undefined;
  const getIdentity = async (): Promise<Identity> => identity ??= await loadOrCreateIdentity({
    get: async () => (o.store.getKeys ? o.store.getKeys(home) : ephemeral),
    put: async (k) => { if (o.store.putKeys) await o.store.putKeys(home, k); else ephemeral = k; },
    extractable: o.store.keysExtractable,
  });

  /** Task requests are signed like uploads: nobody else can ask for work in this volunteer's name. */
  const signRequest = async (jobId: string, at: number): Promise<string> => signTaskRequest(await getIdentity(), jobId, at);

  const volunteerId = async (fresh = false): Promise<string> => {
    const me = await getIdentity();
    const known = fresh ? undefined : await o.store.getVolunteerId(home);
    // an id registered without this key (an older, key-less registration) cannot sign: register the key
    if (known === me.id) return known;
    setState('registering');
    const { challenge, difficulty } = await client.challenge();
    const nonce = await solvePow(challenge, difficulty);
    const id = await client.register(o.agent, o.device, { publicKey: me.publicKey, challenge, nonce });
    await o.store.setVolunteerId(home, id);
    emit({ type: 'registered', volunteerId: id });
    return id;
  };

  /** The job of the last task, asked for again without a round trip to the job list; dropped when it stops running. */
  let lastJobId: string | undefined;
  /** Jobs seen done: a job asked for by name (o.jobId) that is done gives way to the relay's running ones. */
  const ended = new Set<string>();
  let askedJobId: string | undefined;
  let noJobMs = IDLE_MS;
  /** Jobs that refused an upload as not running: a task of theirs leased ahead is not trained. */
  const refusing = new Set<string>();
  /** Jobs this device cannot hold (their model at their batch size), with the reason. */
  const unfit = new Map<string, string>();
  const pickJob = async (): Promise<string | undefined> =>
    askedJobId = (o.jobId !== undefined && !ended.has(o.jobId) ? o.jobId : undefined) ?? lastJobId
      ?? (await client.jobs()).find((j) => !unfit.has(j.jobId))?.jobId;

  /** Remembers a job this device cannot train and says why, on the page too. */
  const markUnfit = (jobId: string, reason: string) => {
    unfit.set(jobId, reason);
    if (lastJobId === jobId) lastJobId = undefined;
    emit({ type: 'unfit', jobId, reason });
    setState('waiting', `this device cannot train job ${jobId}: ${reason}`);
  };

  /** The loop's own check, before any download: a relay that did not check (or a task leased ahead) is caught here. */
  const fitsHere = (task: Task): boolean => {
    const problem = o.adapter && adapterProblem(task.model, task.batchSize, o.adapter);
    if (!problem) return true;
    emit({ type: 'dropped', taskId: task.taskId, code: 'TT_CLIENT_ADAPTER_TOO_SMALL', reason: problem });
    markUnfit(task.jobId, problem);
    return false;
  };

  /** A job that refused work: done ones are remembered (and reported) so the loop moves on at once. */
  const jobEnded = async (jobId: string): Promise<boolean> => {
    const info = await client.job(jobId).catch(() => undefined);
    if (info?.status !== 'done') return false;
    ended.add(jobId);
    const reason = info.finish?.reason ?? 'ended by an operator';
    emit({ type: 'job-ended', jobId, reason });
    setState('waiting', `job "${info.name}" is done (${reason}); looking for another running job`);
    return true;
  };

  const paramsOf = async (task: Task): Promise<Float32Array> => {
    const got = await paramsFor(client, o.store, task, pieces);
    if (got.source !== 'cache') emit({ type: 'params', taskId: task.taskId, version: task.baseVersion, source: got.source, deltas: got.deltas });
    return got.params;
  };

  /** The job's shards this volunteer keeps: decoded in this run, or stored by an earlier one. */
  const heldShards = async (jobId: string): Promise<number[]> => {
    const held = new Set(await o.store.listShards?.(jobId).catch(() => []) ?? []);
    for (const k of shards.keys()) if (k.startsWith(`${jobId}:`)) held.add(Number(k.slice(jobId.length + 1)));
    return [...held];
  };

  const shardFor = async (task: Task): Promise<TaskData> => {
    const key = `${task.jobId}:${task.shard}`;
    let s = shards.get(key);
    if (s) return s;
    s = decodeTaskData(await shardBytes(task.jobId, task.shard));
    shards.set(key, s);
    return s;
  };

  /** Params and shard of a task; a base version rolled back meanwhile (or a refused task) drops it. */
  const readyFor = async (task: Task): Promise<Ready | undefined> => {
    try {
      const [params, shard] = await Promise.all([paramsOf(task), shardFor(task)]);
      return { task, params, shard };
    } catch (e) {
      if (!(e instanceof RelayHttpError && (DROP_CODES.has(e.code) || e.code === 'TT_ERR_UNKNOWN_VERSION'))) throw e;
      emit({ type: 'dropped', taskId: task.taskId, code: e.code, reason: e.message });
      return undefined;
    }
  };

  const trainerFor = async (task: Task): Promise<Trainer> => {
    const opts: TrainOptions = { batchSize: task.batchSize, adamw: task.adamw, clipNorm: task.clipNorm };
    const key = JSON.stringify([task.model, opts]);
    if (trainer?.key !== key) {
      trainer?.t.destroy();
      trainer = { key, t: await o.createTrainer(task.model, opts) };
    }
    return trainer.t;
  };

  // ---- the pipeline: the next task fetched ahead, the last update sent behind ----
  let prefetched: Ready | undefined; // leased and fetched, waiting for the current task to end
  let prefetching: Promise<void> | undefined;
  let lastPrefetchMs: number | undefined; // how long lease + fetch take (a decaying max): when to start the next one
  let lastTaskMs = 0; // wall time of the last task trained in time: would a prefetched lease last?
  let unsent: Trained | undefined; // trained; encoded once the next task's first step is queued
  let sending: Promise<void> = Promise.resolve(); // encodes and uploads, chained in task order
  let sendsPending = 0;

  /** Whether a bounded run (maxTasks) still wants another task after the current one. */
  const wantsAnother = () => o.maxTasks === undefined || uploaded + sendsPending + (unsent ? 1 : 0) + 1 < o.maxTasks;

  /** Leases the next task of this job and fetches its inputs, in the background; never throws: on any
   * trouble the loop leases for itself after this task, with its own waiting and error handling. */
  const prefetch = (jobId: string, vid: string) => {
    const t0 = Date.now();
    prefetching = (async () => {
      try {
        const got = await client.lease(jobId, vid, signRequest, o.adapter, await heldShards(jobId));
        if (!('task' in got)) return; // the round has its work in flight: the relay decides
        if (!fitsHere(got.task)) return;
        const ready = await readyFor(got.task);
        // a slow fetch (a new version's params) is remembered for a while, not just the last quick one
        if (ready) { prefetched = ready; lastPrefetchMs = Math.max(Date.now() - t0, 0.9 * (lastPrefetchMs ?? 0)); }
      } catch { /* see above */ } finally { prefetching = undefined; }
    })();
  };

  /** Encodes a trained task with the job's residual, signs and uploads it; reports, never throws. */
  const send = async (d: Trained): Promise<void> => {
    const { task } = d;
    let saving: Promise<void> | undefined;
    const failed = (e: unknown) => {
      if (o.signal.aborted) return;
      if (e instanceof RelayHttpError && e.code === 'TT_ERR_JOB_NOT_RUNNING') refusing.add(task.jobId);
      if (e instanceof RelayHttpError) emit({ type: 'dropped', taskId: task.taskId, code: e.code, reason: e.message });
      else emit({ type: 'error', message: `upload of ${task.taskId} failed: ${(e as Error).message}` });
    };
    try {
      // a spot-checked task goes without error feedback (no residual in or out), so its copies compare
      let residual = task.replica ? undefined : await o.store.getResidual(task.jobId);
      // a returner's residual from a base the relay no longer takes is dropped (./residual-age.ts)
      if (residual && task.residualMaxAge !== undefined && !keepResidual(await o.store.getResidualBase?.(task.jobId), task.baseVersion, task.residualMaxAge)) {
        emit({ type: 'residual-dropped', taskId: task.taskId });
        residual = undefined;
      }
      if (!residual || residual.length !== d.delta.length) residual = new Float32Array(d.delta.length);
      const payload = encodeUpdate(d.delta, task.compression, residual);
      // the new residual is saved while the update goes up (a reload in between loses what it would
      // either way: the update in flight); the next send waits for both
      if (!task.replica) saving = Promise.all([o.store.putResidual(task.jobId, residual), o.store.putResidualBase?.(task.jobId, task.baseVersion)]).then(() => undefined);
      const frame = encodeUpdateFrame({ lease: task.lease, volunteerId: d.volunteerId, losses: d.losses, samples: task.steps * task.batchSize, computeMs: d.computeMs }, payload);
      const signature = await signUpdate(await getIdentity(), task.taskId, task.lease, frame);
      const start = Date.now();
      const ack = await client.upload(task.taskId, frame, undefined, signature);
      uploaded++;
      emit({ type: 'uploaded', taskId: task.taskId, ack, bytes: frame.length, denseBytes: d.delta.length * 4, ms: Date.now() - start });
    } catch (e) {
      failed(e);
    } finally {
      await saving?.catch(failed);
    }
  };

  /** Lets the last trained update go: after the one before it, so residuals fold in order. */
  const flush = () => {
    if (!unsent) return;
    const d = unsent;
    unsent = undefined;
    sendsPending++;
    sending = sending.then(() => send(d)).finally(() => { sendsPending--; });
  };

  /** Background work that rides on a task's training, checked before each step from the second on. */
  const whileTraining = (task: Task, vid: string, step: number, elapsedMs: number) => {
    if (!prefetched && !prefetching && wantsAnother() && prefetchDue(task.steps, step, elapsedMs, lastPrefetchMs)) prefetch(task.jobId, vid);
  };

  /** Trains one task; undefined when aborted or when its lease ran out meanwhile. */
  const train = async ({ task, params, shard }: Ready, vid: string, saved: Promise<void>): Promise<Trained | undefined> => {
    let t: Trainer;
    try {
      t = await trainerFor(task);
    } catch (e) {
      await saved.catch(() => undefined);
      throw e;
    }
    setState('training');
    // the previous update goes now, not after this task's first step: a pause there must not hold it back
    flush();
    const start = Date.now();
    // the task is saved (so a reload resumes it) while its weights go to the device, before any step
    await Promise.all([t.load(params), saved]);
    for (let step = 0; step < task.steps; step++) {
      if (o.signal.aborted) return undefined;
      if (step > 0) whileTraining(task, vid, step, Date.now() - start);
      const s0 = Date.now();
      await t.step(taskBatch(shard, task.model, task.seed, step, task.batchSize, task.augment));
      emit({ type: 'step', taskId: task.taskId, step, steps: task.steps, ms: Date.now() - s0 });
    }
    whileTraining(task, vid, task.steps, Date.now() - start);
    const losses = await t.losses();
    const delta = await t.delta();
    const computeMs = Date.now() - start;
    emit({ type: 'trained', taskId: task.taskId, losses, computeMs });
    if (client.relayNow() > task.deadline) {
      emit({ type: 'dropped', taskId: task.taskId, code: 'TT_ERR_LEASE_EXPIRED', reason: 'the lease ran out while training' });
      return undefined;
    }
    lastTaskMs = computeMs;
    return { task, volunteerId: vid, delta, losses, computeMs };
  };

  /** The prefetched task, unless its lease would run out before it could be trained. */
  const takePrefetched = (): Ready | undefined => {
    const ready = prefetched;
    prefetched = undefined;
    if (ready && refusing.has(ready.task.jobId)) {
      emit({ type: 'dropped', taskId: ready.task.taskId, code: 'TT_ERR_JOB_NOT_RUNNING', reason: 'its job stopped taking updates after this task was leased ahead' });
      return undefined;
    }
    if (ready && ready.task.deadline < client.relayNow() + lastTaskMs) {
      emit({ type: 'dropped', taskId: ready.task.taskId, code: 'TT_ERR_LEASE_EXPIRED', reason: 'the lease taken ahead would run out before the task could be trained' });
      return undefined;
    }
    return ready;
  };

  /** A task leased now, waiting as the relay says; undefined when the loop should go round again. */
  const leaseNow = async (vid: string): Promise<Ready | undefined> => {
    setState('fetching');
    const jobId = await pickJob();
    if (!jobId) {
      // nothing to train anywhere: the device is let go, and the relay asked ever less often
      trainer?.t.destroy();
      trainer = undefined;
      const why = unfit.size > 0 ? `this device cannot hold any running job (${[...unfit].map(([j, r]) => `${j}: ${r}`).join('; ')}); this tab waits for one, using nothing meanwhile` : 'no running job; this tab waits for one, using nothing meanwhile';
      setState('waiting', why);
      await sleep(noJobMs, o.signal);
      noJobMs = Math.min(2 * noJobMs, NO_JOB_MAX_MS);
      return undefined;
    }
    noJobMs = IDLE_MS;
    let got;
    try {
      got = await client.lease(jobId, vid, signRequest, o.adapter, await heldShards(jobId));
    } catch (e) {
      if (!(e instanceof RelayHttpError && e.code === 'TT_ERR_ADAPTER_TOO_SMALL')) throw e;
      markUnfit(jobId, e.message);
      // a job asked for by name is asked for again later; otherwise the next round picks another job
      if (o.jobId === jobId) await sleep(NO_JOB_MAX_MS, o.signal);
      return undefined;
    }
    if ('retryMs' in got) {
      // a round full of our own work opens when our update lands: wait for that, not the relay's retry time
      if (!got.paused && sendsPending > 0) { setState('uploading'); await sending; return undefined; }
      setState(got.paused ? 'paused' : 'waiting');
      await sleep(got.retryMs, o.signal);
      return undefined;
    }
    refusing.delete(jobId);
    emit({ type: 'task', task: got.task });
    if (!fitsHere(got.task)) {
      if (o.jobId === jobId) await sleep(NO_JOB_MAX_MS, o.signal);
      return undefined;
    }
    return readyFor(got.task);
  };

  try {
    let vid: string | undefined = await volunteerId().catch(() => undefined);
    let resume = await o.store.getTask();
    while (!o.signal.aborted && (o.maxTasks === undefined || uploaded < o.maxTasks)) {
      try {
        vid ??= await volunteerId();
        let ready: Ready | undefined;
        if (resume && resume.deadline > client.relayNow()) {
          emit({ type: 'resumed', taskId: resume.taskId });
          setState('fetching');
          ready = fitsHere(resume) ? await readyFor(resume) : undefined;
        } else if ((ready = takePrefetched())) {
          emit({ type: 'task', task: ready.task });
        } else {
          // nothing to train at once: the last update goes now, and the finished task is no longer
          // resumable (forgotten while the next one is leased: both are on the way to the next round)
          flush();
          const forgotten = o.store.putTask(undefined);
          try {
            if (prefetching) { await prefetching; continue; }
            ready = await leaseNow(vid);
          } catch (e) {
            if (e instanceof RelayHttpError && e.code === 'TT_ERR_UNKNOWN_VOLUNTEER') { vid = await volunteerId(true); continue; }
            if (e instanceof RelayHttpError && e.code === 'TT_ERR_JOB_NOT_RUNNING') {
              lastJobId = undefined;
              if (askedJobId !== undefined && await jobEnded(askedJobId)) continue;
              setState('paused', e.message);
              await sleep(IDLE_MS, o.signal);
              continue;
            }
            if (e instanceof RelayHttpError && e.code === 'TT_ERR_UNKNOWN_JOB' && lastJobId) { lastJobId = undefined; continue; }
            throw e;
          } finally {
            await forgotten;
          }
        }
        resume = undefined;
        if (!ready) continue;
        lastJobId = ready.task.jobId;
        const trained = await train(ready, vid, o.store.putTask(ready.task));
        if (o.signal.aborted) break; // the task stays saved: a restart resumes it while its lease lasts
        if (!trained) continue;
        unsent = trained;
        // one update going up at a time: a slow uplink slows training instead of piling updates up
        if (sendsPending > 0) { setState('uploading'); await sending; }
        // a bounded run with all its tasks trained waits for their uploads
        if (o.maxTasks !== undefined && uploaded + sendsPending + 1 >= o.maxTasks) {
          flush();
          setState('uploading');
          await sending;
        }
      } catch (e) {
        // The relay down or restarting is weather, not failure: wait and carry on (the saved task resumes).
        if (!(e instanceof RelayHttpError && e.code === 'TT_CLIENT_UNREACHABLE')) throw e;
        setState('waiting', 'relay unreachable; trying again');
        resume = await o.store.getTask();
        await sleep(IDLE_MS, o.signal);
      }
    }
    flush();
    if (sendsPending) setState('uploading');
    await sending;
    await prefetching;
    // a bounded run that is done has nothing to resume; an aborted one keeps its task for the restart
    if (!o.signal.aborted) await o.store.putTask(undefined);
  } catch (e) {
    if (o.signal.aborted) return;
    emit({ type: 'error', message: (e as Error).message });
    throw e;
  } finally {
    trainer?.t.destroy();
    setState('stopped');
  }
}
