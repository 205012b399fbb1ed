// Chooses what the worker trains on: the WebGPU engine when the browser gives an adapter, else the CPU
// reference (slower, said so on the page). Works in a Window or a Worker; never throws for a missing GPU.
import { limitsOf } from '../../shared/engine/memory-plan.ts';
import type { ModelConfig } from '../../shared/models/config.ts';
import type { Trainer, TrainOptions } from '../../shared/train/trainer.ts';
import { cpuBackend as cpuReference, type Backend } from '../../shared/volunteer/runtime.ts';

type EngineModule = { createWebGpuTrainer(gpu: GPU, model: ModelConfig, opts: TrainOptions): Promise<Trainer> };

// The engine is found at build time if it is there; the glob is empty (and we train on CPU) if not.
const engines = import.meta.glob<EngineModule>('../../shared/engine/trainer.ts');

export const WEBGPU_BROWSERS = 'Chrome or Edge 113+ (Windows, macOS, ChromeOS; Android 121+), Firefox 141+ on Windows, Safari 26';

function describeAdapter(adapter: GPUAdapter): string {
  const info = (adapter as GPUAdapter & { info?: GPUAdapterInfo }).info;
  if (!info) return 'WebGPU adapter';
  return [info.vendor, info.architecture, info.device, info.description].filter((s) => s && s.length).join(' · ') || 'WebGPU adapter';
}

const cpuBackend = (reason: string): Backend => cpuReference(reason, 'CPU (reference math in a worker)');

export async function pickBackend(opts: { forceCpu?: boolean } = {}): Promise<Backend> {
  if (opts.forceCpu) {
    const b = cpuBackend('the page address asks for the CPU (?cpu=1)');
    return { ...b, device: { ...b.device, forced: true } };
  }
  const gpu = (globalThis.navigator as Navigator | undefined)?.gpu;
  if (!gpu) return cpuBackend(`this browser has no WebGPU (navigator.gpu is missing); WebGPU is in ${WEBGPU_BROWSERS}`);
  let adapter: GPUAdapter | null = null;
  try {
    adapter = await gpu.requestAdapter();
  } catch (e) {
    return cpuBackend(`WebGPU refused an adapter (${(e as Error).message})`);
  }
  if (!adapter) return cpuBackend(`WebGPU is present but gave no adapter (disabled, blocklisted or no driver); WebGPU is in ${WEBGPU_BROWSERS}`);
  const load = engines['../../shared/engine/trainer.ts'];
  if (!load) return cpuBackend('the WebGPU engine is not part of this build yet');
  const description = describeAdapter(adapter);
  return {
    device: { backend: 'webgpu', description },
    adapter: limitsOf(adapter),
    async makeTrainer(model, trainOpts) {
      const engine = await load();
      return engine.createWebGpuTrainer(gpu, model, trainOpts);
    },
  };
}
