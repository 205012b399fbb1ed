// The volunteer's Web Worker: picks WebGPU or the CPU fallback, holds this tab's storage slot, and runs
// the one volunteer runtime (shared/volunteer/runtime.ts) with IndexedDB state. It reports device, phase
// and stats to the page; the page sends pause/intensity.
/// <reference lib="webworker" />
import { createVolunteerRuntime, type VolunteerRuntime } from '../../shared/volunteer/runtime.ts';
import { Throttle } from '../../shared/volunteer/throttle.ts';
import { isFatal } from '../../shared/volunteer/supervise.ts';
import { kvLoopStore } from '../../shared/volunteer/kv-store.ts';
import { pickBackend } from './backend.ts';
import { openVolunteerDb } from './idb-store.ts';
import type { PageSends, WorkerSends } from './messages.ts';
import { peerBridge } from './peer-bridge.ts';
import { acquireSlot } from './slot.ts';

declare const self: DedicatedWorkerGlobalScope;

const STATS_EVERY_MS = 500;

const post = (m: WorkerSends, transfer: Transferable[] = []) => self.postMessage(m, transfer);
const peers = peerBridge(post);
const throttle = new Throttle();
const stop = new AbortController();
let runtime: VolunteerRuntime | undefined;
let started = false;

self.onmessage = (e: MessageEvent<PageSends>) => {
  const m = e.data;
  if (peers.onPage(m)) return;
  if (m.type === 'start' && !started) {
    started = true;
    throttle.setIntensity(m.intensity);
    throttle.setPaused(m.paused);
    // a relay refusing this page's protocol says what to do (reload): shown as it is
    start(m).catch((err: unknown) => post({ type: 'phase', phase: 'error', detail: stoppedBecause(err) }));
  } else if (m.type === 'pause') {
    throttle.setPaused(true);
    runtime?.meter.notify();
  } else if (m.type === 'resume') {
    throttle.setPaused(false);
    runtime?.meter.notify();
  } else if (m.type === 'intensity') {
    throttle.setIntensity(m.value);
  }
};

/** What the page shows when the loop stopped for good. */
function stoppedBecause(err: unknown): string {
  if (isFatal(err) && err.code === 'TT_ERR_CLIENT_TOO_OLD') return `This page is older than its relay: reload the page to get the current one. (The relay said: ${err.message})`;
  if (isFatal(err)) return err.message;
  return `the training loop stopped: ${(err as Error).message}`;
}

async function start(m: Extract<PageSends, { type: 'start' }>): Promise<void> {
  const backend = await pickBackend({ forceCpu: m.forceCpu });
  post({ type: 'device', device: backend.device });
  const slot = await acquireSlot(m.slot, new Promise<void>((resolve) => stop.signal.addEventListener('abort', () => resolve())));
  post({ type: 'slot', slot });
  const db = await openVolunteerDb();
  const store = kvLoopStore(db, slot);
  const rt = await createVolunteerRuntime({
    server: m.servers, jobId: m.jobId, backend, db, store, creditKey: `credit:${slot}`, throttle, signal: stop.signal,
    fetch: fetch.bind(self), peers: m.peers ? peers : undefined,
    agent: (b) => `tabtrain-web (${b})`,
    onPhase: (phase, detail) => post({ type: 'phase', phase, detail }),
    onDevice: (device) => post({ type: 'device', device }),
    onEvent: (ev) => {
      if (ev.type === 'resumed') void reportResume(ev.taskId);
      if (ev.type === 'error') post({ type: 'log', message: ev.message });
      if (ev.type === 'failover') post({ type: 'failover', from: ev.from, relay: ev.to, reason: ev.reason });
    },
    onRestart: (err, waitMs) => {
      post({ type: 'log', message: `loop stopped: ${err.message}; restarting in ${Math.round(waitMs)} ms` });
      post({ type: 'phase', phase: 'waiting', detail: `stopped on an error (${err.message}); starting again in ${(waitMs / 1000).toFixed(0)} s` });
    },
  });
  runtime = rt;
  /** After a reload: which task came back, and a checksum of the residual it will add to its update. */
  const reportResume = async (taskId: string) => {
    const task = await store.getTask();
    const residualChecksum = task ? await store.residualChecksum(task.jobId) : 0;
    rt.meter.stats.resumed = { taskId, residualChecksum };
  };
  const statsTimer = setInterval(() => post({ type: 'stats', stats: rt.meter.snapshot() }), STATS_EVERY_MS);
  try {
    post({ type: 'stats', stats: await rt.run() });
  } finally {
    clearInterval(statsTimer);
  }
}
