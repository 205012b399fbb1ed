// The Node volunteer: the same loop as the browser tab (shared/volunteer/loop.ts), with WebGPU through
// Dawn (server/gpu/dawn.ts) or the CPU reference, state in files, and progress on the terminal.
import { resolve } from 'node:path';
import { limitsOf } from '../../shared/engine/memory-plan.ts';
import type { VolunteerEvent } from '../../shared/volunteer/events.ts';
import { kvLoopStore } from '../../shared/volunteer/kv-store.ts';
import { cpuBackend, createVolunteerRuntime, type Backend } from '../../shared/volunteer/runtime.ts';
import type { DeviceInfo, Stats } from '../../shared/volunteer/status.ts';
import { Throttle } from '../../shared/volunteer/throttle.ts';
import { openFileStore } from './file-store.ts';
import { fileKeyStore } from './key-file.ts';
import { createProgress } from './progress.ts';

export type NodeVolunteerOptions = {
  /** the relay, or several relays of one network in order of preference: the next is used when one stops answering */
  server: string | readonly string[];
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

/** WebGPU through Dawn when it gives an adapter and the engine loads; else the CPU, saying why. */
async function pickNodeBackend(cpu: boolean | undefined): Promise<Backend> {
  if (cpu) return cpuBackend('--cpu given');
  try {
    const { nodeGpu } = await import('../gpu/dawn.ts');
    const gpu = await nodeGpu();
    const adapter = await gpu.requestAdapter();
    const info = adapter?.info;
    const description = [info?.vendor, info?.architecture, info?.device, info?.description].filter(Boolean).join(' · ') || 'WebGPU adapter (Dawn)';
    const { createWebGpuTrainer } = await import('../../shared/engine/trainer.ts');
    return { device: { backend: 'webgpu', description }, ...(adapter ? { adapter: limitsOf(adapter) } : {}), makeTrainer: (model, opts) => createWebGpuTrainer(gpu, model, opts) };
  } catch (e) {
    return cpuBackend(`WebGPU through Dawn is not available here (${(e as Error).message})`);
  }
}

/** Runs until the signal aborts or maxTasks updates are uploaded; returns the final stats. */
export async function runNodeVolunteer(o: NodeVolunteerOptions): Promise<{ device: DeviceInfo; stats: Stats }> {
  const progress = createProgress();
  const say = (line: string) => { if (!o.quiet) process.stdout.write(`[tabtrain] ${line}\n`); };
  const backend = await pickNodeBackend(o.cpu);
  let device = backend.device;
  const describe = (d: DeviceInfo) => (d.backend === 'webgpu' ? `WebGPU · ${d.description}` : `CPU (${d.fallbackReason})`);
  say(`device: ${describe(device)}`);
  const db = await openFileStore(resolve(o.stateDir));
  // the signing key in a 0600 file, so a restart keeps its volunteer id and can finish its saved task
  const store = { ...kvLoopStore(db, 0), ...fileKeyStore(resolve(o.stateDir)) };
  const throttle = new Throttle();
  throttle.setIntensity(o.intensity ?? 1);
  const rt = await createVolunteerRuntime({
    server: o.server, jobId: o.jobId, maxTasks: o.maxTasks, backend, db, store, creditKey: 'credit:0', throttle, signal: o.signal,
    fetch,
    agent: (b) => `tabtrain-node/${process.version} (${b})`,
    onPhase: (phase, detail) => { if (!o.quiet) progress.phase(phase, detail); },
    onDevice: (d) => { device = d; say(`device: ${describe(d)}`); },
    onEvent: (e) => {
      if (e.type === 'uploaded' && !o.quiet) progress.stats(rt.meter.phase().phase, rt.meter.snapshot(), true);
      if (e.type === 'error') say(`error: ${e.message}`);
      if (e.type === 'failover') say(`relay ${e.from} stopped answering (${e.reason}); going on with ${e.to}`);
      o.onEvent?.(e);
    },
    onRestart: (err, waitMs) => say(`the loop stopped (${err.message}); starting again in ${(waitMs / 1000).toFixed(0)} s`),
  });
  const timer = setInterval(() => { if (!o.quiet) progress.stats(rt.meter.phase().phase, rt.meter.snapshot()); }, 1000);
  timer.unref();
  const relays = typeof o.server === 'string' ? [o.server] : o.server;
  say(`${relays.length > 1 ? `relays ${relays.join(', ')} (in this order)` : `relay ${relays[0]}`}; state in ${resolve(o.stateDir)}; Ctrl-C stops (nothing is lost)`);
  let stats: Stats;
  try {
    stats = await rt.run();
  } finally {
    clearInterval(timer);
  }
  if (!o.quiet) { progress.stats('stopped', stats, true); process.stdout.write('\n'); }
  return { device, stats };
}
