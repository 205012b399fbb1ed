// The relay's worker-thread pool (piscina): round closes, evaluations, ONNX exports, dataset preparation
// and spot-check tie-breaks run here, never on the event loop, so one heavy submission or download cannot
// stall every other request. Round closes have a lane of their own (one thread): a round never waits
// behind an evaluation or an export, and those never wait behind a round. One pool per process, shared by
// every relay in it (tests start several) and counted: it ends with the last handle. Each handle counts
// its own tasks and, when closed, abandons its own unfinished ones (their promises reject with
// PoolClosedError, which callers ignore).
import { access } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import Piscina from 'piscina';
import type { PoolKind, PoolResult, PoolTask } from './tasks.ts';

export type { ParamsSource, PoolKind, PoolResult, PoolTask } from './tasks.ts';

export class PoolClosedError extends Error {
  override name = 'PoolClosedError';
}

export type WorkPool = {
  /** `transfer`: buffers of the task moved to the worker, not copied (the caller no longer uses them) */
  run<K extends PoolKind>(task: Extract<PoolTask, { kind: K }>, transfer?: ArrayBuffer[]): Promise<PoolResult[K]>;
  /** tasks this handle started, by kind */
  readonly runs: Record<PoolKind, number>;
  /** tasks this handle has in flight (queued or running) */
  inFlight(): number;
  close(): Promise<void>;
};

/** One task on a handle of its own on the process's pool (the relay's handle keeps the workers alive). */
export async function runOnPool<K extends PoolKind>(task: Extract<PoolTask, { kind: K }>): Promise<PoolResult[K]> {
  const pool = openPool();
  try {
    return await pool.run(task);
  } finally {
    await pool.close();
  }
}

const BOOT = fileURLToPath(new URL('./boot.cjs', import.meta.url));
let shared: { piscina: Piscina; rounds: Piscina; users: number } | undefined;

/** Tasks run in this process, by kind, over every handle (a handle's own counts are its `runs`). */
export const processRuns: Record<PoolKind, number> = { 'gpt-eval': 0, 'mlp-eval': 0, onnx: 0, recompute: 0, dataset: 0, init: 0, round: 0, prefold: 0, compare: 0, validate: 0, 'params-norm': 0, 'hash-upload': 0, usefulness: 0 };

/** Leaves one core to the event loop; at most 4 workers (each holds a model's params while it runs). */
export const POOL_THREADS = Math.max(1, Math.min(4, availableParallelism() - 1));

export function openPool(): WorkPool {
  if (!shared) {
    // One worker starts at once (its TypeScript takes a moment to load: the first submission should not
    // wait for it), more on demand, leaving when idle; execArgv [] so a test runner's own flags stay out.
    // atomics 'disabled': between tasks piscina would otherwise block a worker's event loop in
    // Atomics.wait, so the TypeScript a worker starts loading when it starts only loaded once its first
    // task came (measured: 1.6 s at 1M, 8 s at 124M of a first round spent waiting for it) and nothing
    // asynchronous a task left behind could run until the next task.
    const o = { filename: BOOT, execArgv: [], atomics: 'disabled' as const };
    // Workers lower their own thread's priority (boot.cjs), and threads inherit it from the thread that
    // starts them: libuv's thread pool (file I/O, signature checks) must be started from this thread first,
    // or a worker's first file read would start it, and every request's I/O would run at the workers' priority.
    access(BOOT, () => undefined);
    shared = {
      piscina: new Piscina({ ...o, minThreads: 1, maxThreads: POOL_THREADS, idleTimeout: 10_000 }),
      // rounds of different jobs take turns on one thread: a round holds a few model-sized arrays while it runs
      rounds: new Piscina({ ...o, minThreads: 1, maxThreads: 1, idleTimeout: 60_000 }),
      users: 0,
    };
  }
  const mine = shared;
  mine.users++;
  const runs = { 'gpt-eval': 0, 'mlp-eval': 0, onnx: 0, recompute: 0, dataset: 0, init: 0, round: 0, prefold: 0, compare: 0, validate: 0, 'params-norm': 0, 'hash-upload': 0, usefulness: 0 } as Record<PoolKind, number>;
  const abort = new AbortController();
  let live = 0, closed = false;
  return {
    runs,
    inFlight: () => live,
    async run(task, transfer) {
      if (closed) throw new PoolClosedError('the relay is closing');
      runs[task.kind]++;
      processRuns[task.kind]++;
      live++;
      try {
        const lane = task.kind === 'round' || task.kind === 'prefold' ? mine.rounds : mine.piscina;
        return await lane.run(task, { signal: abort.signal, ...(transfer?.length ? { transferList: transfer } : {}) });
      } catch (e) {
        if (closed) throw new PoolClosedError('the relay closed before this task finished');
        throw e;
      } finally {
        live--;
      }
    },
    async close() {
      if (closed) return;
      closed = true;
      abort.abort();
      if (--mine.users === 0) {
        if (shared === mine) shared = undefined;
        await Promise.all([mine.piscina.destroy(), mine.rounds.destroy()]);
      }
    },
  };
}

declare module 'fastify' {
  interface FastifyInstance {
    /** the relay's handle on the worker pool (server/app.ts opens it, closes it last) */
    pool: WorkPool;
  }
}
