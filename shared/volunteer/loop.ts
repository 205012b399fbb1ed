// The ONE volunteer loop, shared by the browser tab's worker, the Node volunteer and the simulated
// volunteers of the tests. No DOM, no Node APIs: fetch, trainer and storage are injected.
//   register → lease a task → params of its base version (cached by hash) → shard (cached)
//   → H inner steps on batches drawn from (seed, step) → Δ → encode with error feedback → upload.
// The next task starts while the last upload is in flight (at most one upload at a time).
import { encodeUpdate } from '../codec/index.ts';
import { decodeTaskData, taskBatch, type TaskData } from '../data/task-data.ts';
import type { ModelConfig } from '../models/config.ts';
import { encodeUpdateFrame } from '../protocol/frame.ts';
import type { Task } from '../protocol/messages.ts';
import { loadOrCreateIdentity, signUpdate, type Identity } from '../security/identity.ts';
import { solvePow } from '../security/pow.ts';
import type { Trainer, TrainOptions } from '../train/trainer.ts';
import { RelayClient, RelayHttpError, sleep, type FetchLike, type RetryPolicy } from './client.ts';
import type { VolunteerEvent, VolunteerState } from './events.ts';
import type { LoopStore } from './store.ts';

export type { VolunteerEvent, VolunteerState } from './events.ts';
export type { LoopStore } from './store.ts';

export type VolunteerOptions = {
  /** relay base URL, e.g. http://127.0.0.1:8080 */
  server: string;
  fetch: FetchLike;
  createTrainer: (model: ModelConfig, opts: TrainOptions) => Trainer | Promise<Trainer>;
  store: LoopStore;
  signal: AbortSignal;
  onEvent?: (e: VolunteerEvent) => void;
  /** job to work on; default: the first running job the relay lists */
  jobId?: string;
  agent?: string;
  device?: string;
  retry?: RetryPolicy;
  /** stop after this many uploaded updates (tests, benchmarks); default: run until aborted */
  maxTasks?: number;
};

/** Codes that end a task but not the loop. */
const DROP_CODES = new Set(['TT_ERR_LEASE_EXPIRED', 'TT_ERR_LEASE_USED', 'TT_ERR_TOO_STALE', 'TT_ERR_UNKNOWN_TASK', 'TT_ERR_JOB_NOT_RUNNING', 'TT_ERR_SIGNATURE']);
const IDLE_MS = 2_000;

const sha256Hex = async (p: Float32Array): Promise<string | undefined> => {
  const subtle = globalThis.crypto?.subtle; // absent on insecure http origins: skip the check there
  if (!subtle) return undefined;
  const d = new Uint8Array(await subtle.digest('SHA-256', new Uint8Array(p.buffer, p.byteOffset, p.byteLength) as Uint8Array<ArrayBuffer>));
  return Array.from(d, (b) => b.toString(16).padStart(2, '0')).join('');
};

/** Runs until the signal aborts (resolves quietly) or maxTasks updates are uploaded. */
export async function runVolunteer(o: VolunteerOptions): Promise<void> {
  const emit = (e: VolunteerEvent) => { try { o.onEvent?.(e); } catch { /* a UI bug must not stop training */ } };
  let state: VolunteerState | undefined;
  const setState = (s: VolunteerState, detail?: string) => { if (s !== state || detail) { state = s; emit({ type: 'state', state: s, detail }); } };
  const client = new RelayClient(o.server, o.fetch, {
    signal: o.signal, retry: o.retry,
    onRetry: (what, attempt, delayMs, reason) => emit({ type: 'retry', what, attempt, delayMs, reason }),
  });
  const shards = new Map<string, TaskData>();
  let trainer: { key: string; t: Trainer } | undefined;
  let inFlight: Promise<void> = Promise.resolve();
  let uploaded = 0;

  // the signing identity: kept in the store when it can hold keys, else for this run only
  let ephemeral: CryptoKeyPair | undefined;
  let identity: Identity | undefined;
  const getIdentity = async (): Promise<Identity> => identity ??= await loadOrCreateIdentity({
    get: async () => (o.store.getKeys ? o.store.getKeys(o.server) : ephemeral),
    put: async (k) => { if (o.store.putKeys) await o.store.putKeys(o.server, k); else ephemeral = k; },
  });

  const volunteerId = async (fresh = false): Promise<string> => {
    const me = await getIdentity();
    const known = fresh ? undefined : await o.store.getVolunteerId(o.server);
    // an id registered without this key (an older, key-less registration) cannot sign: register the key
    if (known === me.id) return known;
    setState('registering');
    const { challenge, difficulty } = await client.challenge();
    const nonce = await solvePow(challenge, difficulty);
    const id = await client.register(o.agent, o.device, { publicKey: me.publicKey, challenge, nonce });
    await o.store.setVolunteerId(o.server, id);
    emit({ type: 'registered', volunteerId: id });
    return id;
  };

  const pickJob = async (): Promise<string | undefined> => o.jobId ?? (await client.jobs())[0]?.jobId;

  const paramsFor = async (task: Task): Promise<Float32Array> => {
    const cached = await o.store.getParams(task.versionHash);
    if (cached) return cached;
    const { params } = await client.params(task.jobId, task.baseVersion);
    const got = await sha256Hex(params);
    if (got !== undefined && got !== task.versionHash) throw new Error(`params of version ${task.baseVersion} hash to ${got}, the task says ${task.versionHash}`);
    if (params.length !== task.paramCount) throw new Error(`params of version ${task.baseVersion} have ${params.length} values, the task says ${task.paramCount}`);
    await o.store.putParams(task.versionHash, params);
    return params;
  };

  const shardFor = async (task: Task): Promise<TaskData> => {
    const key = `${task.jobId}:${task.shard}`;
    let s = shards.get(key);
    if (s) return s;
    let bytes = await o.store.getShard(task.jobId, task.shard);
    if (!bytes) {
      bytes = await client.shard(task.jobId, task.shard);
      await o.store.putShard(task.jobId, task.shard, bytes);
    }
    s = decodeTaskData(bytes);
    shards.set(key, s);
    return s;
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

  /** Trains one task and returns its encoded frame, or undefined when the lease ran out meanwhile. */
  const train = async (task: Task, vid: string): Promise<{ frame: Uint8Array; dense: number; signature: string } | undefined> => {
    setState('fetching');
    const [params, shard, t] = await Promise.all([paramsFor(task), shardFor(task), trainerFor(task)]);
    setState('training');
    const start = Date.now();
    await t.load(params);
    for (let step = 0; step < task.steps; step++) {
      if (o.signal.aborted) return undefined;
      const s0 = Date.now();
      await t.step(taskBatch(shard, task.model, task.seed, step, task.batchSize));
      emit({ type: 'step', taskId: task.taskId, step, steps: task.steps, ms: Date.now() - s0 });
    }
    const losses = await t.losses();
    const delta = await t.delta();
    const computeMs = Date.now() - start;
    emit({ type: 'trained', taskId: task.taskId, losses, computeMs });
    if (Date.now() > task.deadline) {
      emit({ type: 'dropped', taskId: task.taskId, code: 'TT_ERR_LEASE_EXPIRED', reason: 'the lease ran out while training' });
      return undefined;
    }
    // a spot-checked task goes without error feedback (no residual in or out), so its copies compare
    let residual = task.replica ? undefined : await o.store.getResidual(task.jobId);
    if (!residual || residual.length !== delta.length) residual = new Float32Array(delta.length);
    const payload = encodeUpdate(delta, task.compression, residual);
    if (!task.replica) await o.store.putResidual(task.jobId, residual);
    const frame = encodeUpdateFrame({ lease: task.lease, volunteerId: vid, losses, samples: task.steps * task.batchSize, computeMs }, payload);
    const signature = await signUpdate(await getIdentity(), task.taskId, task.lease, frame);
    return { frame, dense: delta.length * 4, signature };
  };

  const upload = async (task: Task, frame: Uint8Array, dense: number, signature: string): Promise<void> => {
    const start = Date.now();
    try {
      const ack = await client.upload(task.taskId, frame, undefined, signature);
      uploaded++;
      emit({ type: 'uploaded', taskId: task.taskId, ack, bytes: frame.length, denseBytes: dense, ms: Date.now() - start });
    } catch (e) {
      if (o.signal.aborted) return;
      if (e instanceof RelayHttpError) emit({ type: 'dropped', taskId: task.taskId, code: e.code, reason: e.message });
      else emit({ type: 'error', message: `upload of ${task.taskId} failed: ${(e as Error).message}` });
    }
  };

  try {
    let vid: string | undefined = await volunteerId().catch(() => undefined);
    let resume = await o.store.getTask();
    while (!o.signal.aborted && (o.maxTasks === undefined || uploaded < o.maxTasks)) {
      try {
        vid ??= await volunteerId();
        let task: Task;
        if (resume && resume.deadline > Date.now()) {
          task = resume;
          emit({ type: 'resumed', taskId: task.taskId });
        } else {
          const jobId = await pickJob();
          if (!jobId) { setState('waiting', 'no running job'); await sleep(IDLE_MS, o.signal); continue; }
          let got: Awaited<ReturnType<RelayClient['lease']>>;
          try {
            got = await client.lease(jobId, vid);
          } catch (e) {
            if (e instanceof RelayHttpError && e.code === 'TT_ERR_UNKNOWN_VOLUNTEER') { vid = await volunteerId(true); continue; }
            if (e instanceof RelayHttpError && e.code === 'TT_ERR_JOB_NOT_RUNNING') { setState('paused', e.message); await sleep(IDLE_MS, o.signal); continue; }
            throw e;
          }
          if ('retryMs' in got) { setState(got.paused ? 'paused' : 'waiting'); await sleep(got.retryMs, o.signal); continue; }
          task = got.task;
          emit({ type: 'task', task });
        }
        resume = undefined;
        await o.store.putTask(task);
        const taskVid = vid; // narrowed to string above
        let out: Awaited<ReturnType<typeof train>>;
        try {
          out = await train(task, taskVid);
        } catch (e) {
          // An operator's rollback can delete the task's base version between lease and download: drop it, lease again.
          if (!(e instanceof RelayHttpError && (DROP_CODES.has(e.code) || e.code === 'TT_ERR_UNKNOWN_VERSION'))) throw e;
          emit({ type: 'dropped', taskId: task.taskId, code: e.code, reason: e.message });
          out = undefined;
        }
        await o.store.putTask(undefined);
        if (!out) continue;
        // one upload at a time; this one overlaps the next task's training
        await inFlight;
        setState('uploading');
        inFlight = upload(task, out.frame, out.dense, out.signature);
        if (o.maxTasks !== undefined && uploaded + 1 >= o.maxTasks) await inFlight;
      } catch (e) {
        // The relay down or restarting is weather, not failure: wait and carry on (the saved task resumes).
        if (!(e instanceof RelayHttpError && e.code === 'TT_CLIENT_UNREACHABLE')) throw e;
        setState('waiting', 'relay unreachable; trying again');
        resume = await o.store.getTask();
        await sleep(IDLE_MS, o.signal);
      }
    }
    await inFlight;
  } catch (e) {
    if (o.signal.aborted) return;
    emit({ type: 'error', message: (e as Error).message });
    throw e;
  } finally {
    trainer?.t.destroy();
    setState('stopped');
  }
}
