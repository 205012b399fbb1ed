// One volunteer, set up the same way in a tab's Web Worker and in the Node volunteer: the loop
// (./loop.ts) with a metered fetch and a metered, throttled trainer, a supervisor that restarts it after
// an error, credit carried across sessions, and the CPU fallback when the GPU engine cannot build a
// model. Hosts differ only in what they pass in: the backend they found, their storage, their screen.
import type { AdapterLimits } from '../engine/memory-plan.ts';
import type { ModelConfig } from '../models/config.ts';
import { createCpuTrainer } from '../train/cpu.ts';
import type { Trainer, TrainOptions } from '../train/trainer.ts';
import type { Phase, VolunteerEvent } from './events.ts';
import type { VolunteerDb } from './kv.ts';
import { runVolunteer } from './loop.ts';
import { gpuStepsOf, Meter } from './meter.ts';
import type { DeviceInfo, Stats } from './status.ts';
import type { PeerSource } from './pieces.ts';
import type { LoopStore } from './store.ts';
import { NEVER_GIVE_UP, supervise } from './supervise.ts';
import type { Throttle } from './throttle.ts';

/** What a volunteer trains on: the device it describes and how to build a trainer there. */
export type Backend = {
  device: DeviceInfo;
  /** the GPU adapter's limits (absent on the CPU): the relay leases only tasks whose memory plan fits */
  adapter?: AdapterLimits;
  makeTrainer(model: ModelConfig, opts: TrainOptions): Promise<Trainer>;
};

/** The CPU reference: slower, always there. `reason` says why the GPU is not used. */
export function cpuBackend(reason: string, description = 'CPU (reference math)'): Backend {
  return {
    device: { backend: 'cpu', description, fallbackReason: reason },
    makeTrainer: async (model, opts) => createCpuTrainer(model, opts),
  };
}

export type RuntimeOptions = {
  /** the relay, or several relays of one network in order of preference (failover: ./client.ts) */
  server: string | readonly string[];
  jobId?: string;
  /** stop after this many uploads (tests, benchmarks) */
  maxTasks?: number;
  backend: Backend;
  db: VolunteerDb;
  store: LoopStore;
  /** where this volunteer's credit is kept in db (per tab slot) */
  creditKey: string;
  throttle: Throttle;
  signal: AbortSignal;
  fetch: typeof fetch;
  /** other volunteers to fetch pieces from before the relay (./pieces.ts) */
  peers?: PeerSource;
  /** the User-Agent-like string sent on registration, for the backend in use */
  agent(backend: DeviceInfo['backend']): string;
  onPhase(phase: Phase, detail?: string): void;
  /** the backend changed (a GPU that could not build the model fell back to the CPU) */
  onDevice?(device: DeviceInfo): void;
  onEvent?(e: VolunteerEvent): void;
  /** the loop stopped on an error and starts again after waitMs */
  onRestart(err: Error, waitMs: number): void;
};

const CREDIT_SAVE_EVERY_MS = 2000;

export type VolunteerRuntime = {
  meter: Meter;
  /** Runs until the signal aborts (or maxTasks uploads); resolves with the final stats. */
  run(): Promise<Stats>;
};

export async function createVolunteerRuntime(o: RuntimeOptions): Promise<VolunteerRuntime> {
  let backend = o.backend;
  const meter = new Meter({
    throttle: o.throttle, signal: o.signal, credit: (await o.db.getRecord<number>(o.creditKey)) ?? 0,
    onPhase: (phase, detail) => o.onPhase(phase, detail),
  });

  async function makeTrainer(model: ModelConfig, opts: TrainOptions): Promise<Trainer> {
    let t: Trainer;
    try {
      t = await backend.makeTrainer(model, opts);
    } catch (err) {
      if (backend.device.backend !== 'webgpu') throw err;
      // a GPU that cannot build the model (limits, lost device) still leaves the CPU
      backend = cpuBackend(`the WebGPU engine failed here (${(err as Error).message})`);
      o.onDevice?.(backend.device);
      t = await backend.makeTrainer(model, opts);
    }
    return meter.wrapTrainer(t, gpuStepsOf(t) === undefined ? undefined : () => gpuStepsOf(t) ?? 0);
  }

  const runOnce = () => runVolunteer({
    server: o.server, jobId: o.jobId, store: o.store, signal: o.signal, maxTasks: o.maxTasks, retry: NEVER_GIVE_UP,
    fetch: meter.wrapFetch(o.fetch), peers: o.peers,
    agent: o.agent(backend.device.backend),
    device: backend.device.description,
    adapter: backend.adapter,
    createTrainer: makeTrainer,
    onEvent: (e) => {
      meter.onLoopEvent(e);
      o.onEvent?.(e);
    },
  });

  async function run(): Promise<Stats> {
    meter.notify();
    let saved = meter.stats.credit;
    const saveCredit = async () => {
      if (meter.stats.credit === saved) return;
      saved = meter.stats.credit;
      await o.db.putRecord(o.creditKey, saved);
    };
    const creditTimer = setInterval(() => { void saveCredit().catch(() => undefined); }, CREDIT_SAVE_EVERY_MS);
    try {
      await supervise(runOnce, o.signal, (err, waitMs) => {
        meter.stats.lastError = err.message;
        o.onRestart(err, waitMs);
      });
    } finally {
      clearInterval(creditTimer);
      await saveCredit();
    }
    return meter.snapshot();
  }

  return { meter, run };
}
