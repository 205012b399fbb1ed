// Test helpers for the relay: a real relay on 127.0.0.1 and a random port over a temporary data
// directory, and simulated volunteers (the one volunteer loop + the CPU trainer) speaking real HTTP.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildApp, type Relay, type RelayOptions } from '../../server/app.ts';
import { createCpuTrainer } from '../../shared/train/cpu.ts';
import { runVolunteer, type VolunteerEvent } from '../../shared/volunteer/loop.ts';
import { memoryLoopStore } from '../../shared/volunteer/store.ts';
import type { RetryPolicy } from '../../shared/volunteer/client.ts';
import type { Eval, Task } from '../../shared/protocol/messages.ts';
import { decodeTaskData, taskBatch } from '../../shared/data/task-data.ts';

export type TestRelay = Relay & { url: string; dataDir: string; stop(): Promise<void> };

/** A clock that runs with real time and can be moved ahead: give `now` to a relay (RelayOptions.now) and
 * to volunteers, then `advance` past a lease deadline or a round timer instead of sleeping through it. */
export type TestClock = { now: () => number; advance(ms: number): void };
export function testClock(): TestClock {
  let ahead = 0;
  return { now: () => Date.now() + ahead, advance: (ms) => { ahead += ms; } };
}

export const tempDataDir = (): string => mkdtempSync(join(tmpdir(), 'tabtrain-test-'));

/** Starts a relay; stop() closes it and removes its data directory (unless keepData). */
export async function startRelay(opts: Partial<RelayOptions> & { keepData?: boolean } = {}): Promise<TestRelay> {
  const dataDir = opts.dataDir ?? tempDataDir();
  // a low proof-of-work difficulty keeps registration cheap in tests (the default is 16 bits)
  const relay = await buildApp({ sweepMs: 100, ...opts, defence: { powDifficulty: 4, ...opts.defence }, dataDir, port: opts.port ?? 0, host: '127.0.0.1', logger: false });
  return {
    ...relay, url: relay.url!, dataDir,
    async stop() {
      await relay.close();
      if (!opts.keepData) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export type Volunteers = { events: VolunteerEvent[]; stop(): Promise<void>; done: Promise<void[]> };

/** n simulated volunteers on the CPU reference; events of all of them in one list. `server`: the relay, or
 * several in order of preference (failover), or volunteer i's list; `fetch`: how their requests go out
 * (several relays: a fetch that spreads them). */
export function startVolunteers(server: string | string[] | ((i: number) => string[]), n: number, opts: {
  jobId?: string; onEvent?: (i: number, e: VolunteerEvent) => void; fetch?: typeof fetch; retry?: RetryPolicy;
} = {}): Volunteers {
  const abort = new AbortController();
  const events: VolunteerEvent[] = [];
  const done = Promise.all(Array.from({ length: n }, (_, i) => runVolunteer({
    server: typeof server === 'function' ? server(i) : server, fetch: (u, init) => (opts.fetch ?? fetch)(u, init), createTrainer: createCpuTrainer, store: memoryLoopStore(), signal: abort.signal,
    jobId: opts.jobId, agent: `simulated-${i}`, retry: opts.retry ?? { baseMs: 100, maxMs: 2_000, attempts: 30 },
    onEvent: (e) => { events.push(e); opts.onEvent?.(i, e); },
  })));
  // a volunteer that fails reports it as an 'error' event (tests assert there are none); no unhandled rejection
  done.catch(() => undefined);
  return { events, done, async stop() { abort.abort(); await done.catch(() => undefined); } };
}

export async function evals(server: string, jobId = 'mnist-mlp'): Promise<Eval[]> {
  const r = await fetch(`${server}/api/jobs/${jobId}/evals`);
  return ((await r.json()) as { evals: Eval[] }).evals;
}

/** Polls until predicate holds (no timing assertion: the test's own timeout is the only bound). */
export async function waitFor<T>(probe: () => Promise<T>, ok: (v: T) => boolean, everyMs = 200): Promise<T> {
  for (;;) {
    const v = await probe();
    if (ok(v)) return v;
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export const bestAccuracy = (es: Eval[]): number => Math.max(0, ...es.map((e) => e.accuracy));

/** What an honest volunteer sends for a task: its base params and shard fetched over HTTP, H steps of the
 * CPU reference on the task's seeded (and augmented) batches, Δ = θ_base − θ_end. */
export async function honestDelta(server: string, task: Task): Promise<Float32Array> {
  const get = async (path: string) => new Uint8Array(await (await fetch(`${server}/api/jobs/${task.jobId}/${path}`)).arrayBuffer());
  const params = new Float32Array((await get(`versions/${task.baseVersion}/params`)).buffer);
  const shard = decodeTaskData(await get(`shards/${task.shard}`));
  const t = createCpuTrainer(task.model, { batchSize: task.batchSize, adamw: task.adamw, clipNorm: task.clipNorm });
  try {
    await t.load(params);
    for (let s = 0; s < task.steps; s++) await t.step(taskBatch(shard, task.model, task.seed, s, task.batchSize, task.augment));
    return await t.delta();
  } finally {
    t.destroy();
  }
}
