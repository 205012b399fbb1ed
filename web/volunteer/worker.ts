// The volunteer's Web Worker: picks WebGPU or the CPU fallback, holds this tab's storage slot, and runs
// the one volunteer loop (shared/volunteer/loop.ts) with IndexedDB state, a metered fetch and a metered,
// throttled trainer. It reports device, phase and stats to the page; the page sends pause/intensity.
/// <reference lib="webworker" />
import { runVolunteer } from '../../shared/volunteer/loop.ts';
import { gpuStepsOf, Meter } from '../shared/meter.ts';
import { NEVER_GIVE_UP, supervise } from '../shared/supervise.ts';
import { cpuBackend, pickBackend } from './backend.ts';
import { openVolunteerDb } from './idb-store.ts';
import { idbLoopStore } from './loop-store.ts';
import type { PageSends, WorkerSends } from './messages.ts';
import type { Trainer } from '../../shared/train/trainer.ts';
import { acquireSlot } from './slot.ts';
import { Throttle } from './throttle.ts';

declare const self: DedicatedWorkerGlobalScope;

const STATS_EVERY_MS = 500;
const CREDIT_SAVE_EVERY_MS = 2000;

const post = (m: WorkerSends) => self.postMessage(m);
const throttle = new Throttle();
const stop = new AbortController();
let meter: Meter | undefined;
let started = false;

self.onmessage = (e: MessageEvent<PageSends>) => {
  const m = e.data;
  if (m.type === 'start' && !started) {
    started = true;
    throttle.setIntensity(m.intensity);
    throttle.setPaused(m.paused);
    start(m).catch((err: unknown) => post({ type: 'phase', phase: 'error', detail: `the training loop stopped: ${(err as Error).message}` }));
  } else if (m.type === 'pause') {
    throttle.setPaused(true);
    meter?.notify();
  } else if (m.type === 'resume') {
    throttle.setPaused(false);
    meter?.notify();
  } else if (m.type === 'intensity') {
    throttle.setIntensity(m.value);
  }
};

async function start(m: Extract<PageSends, { type: 'start' }>): Promise<void> {
  let backend = await pickBackend({ forceCpu: m.forceCpu });
  post({ type: 'device', device: backend.device });
  const slot = await acquireSlot(m.slot, new Promise<void>((resolve) => stop.signal.addEventListener('abort', () => resolve())));
  post({ type: 'slot', slot });
  const db = await openVolunteerDb();
  const store = idbLoopStore(db, slot);
  const creditKey = `credit:${slot}`;
  const meterNow = new Meter({
    throttle, signal: stop.signal, credit: (await db.getRecord<number>(creditKey)) ?? 0,
    onPhase: (phase, detail) => post({ type: 'phase', phase, detail }),
  });
  meter = meterNow;
  meterNow.notify();
  const statsTimer = setInterval(() => post({ type: 'stats', stats: meterNow.snapshot() }), STATS_EVERY_MS);
  let savedCredit = meterNow.stats.credit;
  const creditTimer = setInterval(() => {
    if (meterNow.stats.credit !== savedCredit) {
      savedCredit = meterNow.stats.credit;
      void db.putRecord(creditKey, savedCredit);
    }
  }, CREDIT_SAVE_EVERY_MS);
  /** After a reload: which task came back, and a checksum of the residual it will add to its update. */
  const reportResume = async (taskId: string) => {
    const task = await store.getTask();
    const residualChecksum = task ? await store.residualChecksum(task.jobId) : 0;
    meterNow.stats.resumed = { taskId, residualChecksum };
  };
  try {
    await supervise(runOnce, stop.signal, (err, waitMs) => {
      meterNow.stats.lastError = err.message;
      post({ type: 'log', message: `loop stopped: ${err.message}; restarting in ${Math.round(waitMs)} ms` });
      post({ type: 'phase', phase: 'waiting', detail: `stopped on an error (${err.message}); starting again in ${(waitMs / 1000).toFixed(0)} s` });
    });
  } finally {
    clearInterval(statsTimer);
    clearInterval(creditTimer);
    post({ type: 'stats', stats: meterNow.snapshot() });
  }

  function runOnce(): Promise<void> {
    return runVolunteer({
      server: m.server,
      jobId: m.jobId,
      fetch: meterNow.wrapFetch(fetch.bind(self)),
      retry: NEVER_GIVE_UP,
      createTrainer: async (model, opts) => {
        let t: Trainer;
        try {
          t = await backend.makeTrainer(model, opts);
        } catch (err) {
          if (backend.device.backend !== 'webgpu') throw err;
          // a GPU that cannot build the model (limits, lost device) still leaves the CPU
          backend = cpuBackend(`the WebGPU engine failed here (${(err as Error).message})`);
          post({ type: 'device', device: backend.device });
          t = await backend.makeTrainer(model, opts);
        }
        return meterNow.wrapTrainer(t, gpuStepsOf(t) === undefined ? undefined : () => gpuStepsOf(t) ?? 0);
      },
      store,
      signal: stop.signal,
      agent: `tabtrain-web (${backend.device.backend})`,
      device: backend.device.description,
      onEvent: (ev) => {
        meterNow.onLoopEvent(ev);
        if (ev.type === 'resumed') void reportResume(ev.taskId);
        if (ev.type === 'error') post({ type: 'log', message: ev.message });
      },
    });
  }
}
