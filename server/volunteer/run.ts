// The Node volunteer: the same loop as the browser tab (shared/volunteer/loop.ts), with WebGPU through
// Dawn (server/gpu/dawn.ts) or the CPU reference, state in files, and progress on the terminal.
import { resolve } from 'node:path';
import type { ModelConfig } from '../../shared/models/config.ts';
import { createCpuTrainer } from '../../shared/train/cpu.ts';
import type { Trainer, TrainOptions } from '../../shared/train/trainer.ts';
import { runVolunteer, type VolunteerEvent } from '../../shared/volunteer/loop.ts';
import { gpuStepsOf, Meter } from '../../web/shared/meter.ts';
import { NEVER_GIVE_UP, supervise } from '../../web/shared/supervise.ts';
import { idbLoopStore } from '../../web/volunteer/loop-store.ts';
import type { DeviceInfo, Stats } from '../../web/volunteer/messages.ts';
import { Throttle } from '../../web/volunteer/throttle.ts';
import { openFileStore } from './file-store.ts';
import { fileKeyStore } from './key-file.ts';
import { createProgress } from './progress.ts';

export type NodeVolunteerOptions = {
  server: string;
  jobId?: string;
  stateDir: string;
  cpu?: boolean;
  intensity?: number;
  signal: AbortSignal;
  /** stop after this many uploads (tests, benchmarks) */
  maxTasks?: number;
  onEvent?: (e: VolunteerEvent) => void;
  quiet?: boolean;
};

type MakeTrainer = (model: ModelConfig, opts: TrainOptions) => Promise<Trainer>;

/** WebGPU through Dawn when it gives an adapter and the engine loads; else the CPU, saying why. */
async function pickNodeBackend(cpu: boolean | undefined): Promise<{ device: DeviceInfo; make: MakeTrainer }> {
  const cpuBackend = (reason: string) => ({
    device: { backend: 'cpu' as const, description: 'CPU (reference math)', fallbackReason: reason },
    make: async (model: ModelConfig, opts: TrainOptions) => createCpuTrainer(model, opts),
  });
  if (cpu) return cpuBackend('--cpu given');
  try {
    const { nodeGpu } = await import('../gpu/dawn.ts');
    const gpu = await nodeGpu();
    const adapter = await gpu.requestAdapter();
    const info = adapter?.info;
    const description = [info?.vendor, info?.architecture, info?.device, info?.description].filter(Boolean).join(' · ') || 'WebGPU adapter (Dawn)';
    const { createWebGpuTrainer } = await import('../../shared/engine/trainer.ts');
    return { device: { backend: 'webgpu', description }, make: (model, opts) => createWebGpuTrainer(gpu, model, opts) };
  } catch (e) {
    return cpuBackend(`WebGPU through Dawn is not available here (${(e as Error).message})`);
  }
}

/** Runs until the signal aborts or maxTasks updates are uploaded; returns the final stats. */
export async function runNodeVolunteer(o: NodeVolunteerOptions): Promise<{ device: DeviceInfo; stats: Stats }> {
  const progress = createProgress();
  const say = (line: string) => { if (!o.quiet) process.stdout.write(`[tabtrain] ${line}\n`); };
  const backend = await pickNodeBackend(o.cpu);
  say(`device: ${backend.device.backend === 'webgpu' ? `WebGPU · ${backend.device.description}` : `CPU (${backend.device.fallbackReason})`}`);
  const db = await openFileStore(resolve(o.stateDir));
  // the signing key in a 0600 file, so a restart keeps its volunteer id and can finish its saved task
  const store = { ...idbLoopStore(db, 0), ...fileKeyStore(resolve(o.stateDir)) };
  const throttle = new Throttle();
  throttle.setIntensity(o.intensity ?? 1);
  const creditKey = 'credit:0';
  const meter = new Meter({
    throttle, signal: o.signal, credit: (await db.getRecord<number>(creditKey)) ?? 0,
    onPhase: (phase, detail) => { if (!o.quiet) progress.phase(phase, detail); },
  });
  const timer = setInterval(() => { if (!o.quiet) progress.stats(meter.phase().phase, meter.snapshot()); }, 1000);
  timer.unref();
  say(`relay ${o.server}; state in ${resolve(o.stateDir)}; Ctrl-C stops (nothing is lost)`);
  const runOnce = () => runVolunteer({
    server: o.server, retry: NEVER_GIVE_UP, jobId: o.jobId, store, signal: o.signal, maxTasks: o.maxTasks,
    fetch: meter.wrapFetch(fetch),
    agent: `tabtrain-node/${process.version} (${backend.device.backend})`,
    device: backend.device.description,
    createTrainer: async (model, opts) => {
      const t = await backend.make(model, opts);
      return meter.wrapTrainer(t, gpuStepsOf(t) === undefined ? undefined : () => gpuStepsOf(t) ?? 0);
    },
    onEvent: (e) => {
      meter.onLoopEvent(e);
      if (e.type === 'uploaded' && !o.quiet) progress.stats(meter.phase().phase, meter.snapshot(), true);
      if (e.type === 'error') say(`error: ${e.message}`);
      o.onEvent?.(e);
    },
  });
  try {
    await supervise(runOnce, o.signal, (err, waitMs) => say(`the loop stopped (${err.message}); starting again in ${(waitMs / 1000).toFixed(0)} s`));
  } finally {
    clearInterval(timer);
    await db.putRecord(creditKey, meter.stats.credit);
  }
  const stats = meter.snapshot();
  if (!o.quiet) { progress.stats('stopped', stats, true); process.stdout.write('\n'); }
  return { device: backend.device, stats };
}
