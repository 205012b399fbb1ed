// The WebGPU implementation of the Trainer contract. θ, its gradient and AdamW's m and v are each one
// flat fp32 vector in paramLayout order, held in one buffer, or in segments where the device's binding
// limit is below the model (param-segments.ts; clipping and the optimizer then run once per segment);
// those four are the only full-size vectors (16 bytes per parameter). The task's starting
// θ stays on the CPU and Δ is computed there from one readback; evaluation with other parameters parks
// θ in the gradient buffer (free between steps) instead of holding a copy. A step is one command buffer
// (forward, loss, backward, norm, AdamW) and reads nothing back: its loss lands in a GPU slot that
// losses() reads once. Before any buffer exists the trainer computes its memory plan (memory-plan.ts),
// sizes the device to it and refuses, naming needed vs available, what the adapter cannot hold.
import { paramCount, type ModelConfig } from '../models/config.ts';
import type { Batch, Trainer, TrainOptions } from '../train/trainer.ts';
import { acquireDevice, Gpu, type Device, type Dispatch } from './device.ts';
import type { KernelPolicy } from './policy.ts';
import { adamw, packAdamwParams, packStep } from './kernels/elementwise.ts';
import { globalNorm, meanLoss, sumsqPartials } from './kernels/reduce.ts';
import { bufferBytes, placeParams, planMemory, type MemoryPlan } from './memory-plan.ts';
import { ParamBuffers } from './param-buffers.ts';
import { runtimeOf } from '../models/runtimes.ts';
import type { Plan, PlanBuffers } from './models/plan.ts';

export interface WebGpuTrainer extends Trainer {
  readonly backend: 'webgpu';
  readonly adapterInfo: Device['adapterInfo'];
  readonly features: Device['features'];
  /** Kernel variants this trainer runs (policy.ts: chosen from the adapter unless overridden). */
  readonly policy: KernelPolicy;
  /** Training steps this trainer has submitted to the GPU since it was created. */
  readonly gpuSteps: number;
  /** Buffers alive on the device (for leak checks). */
  readonly liveBuffers: number;
  /** Bytes of storage buffers this trainer holds now (compare with memoryPlan.total). */
  readonly allocatedBytes: number;
  /** What the trainer planned to allocate at its batch size, computed before allocating anything. */
  readonly memoryPlan: MemoryPlan;
  /**
   * Forward pass only: logits [rows, classes] for `batch` (rows = n, or n·context for the GPT),
   * with `params` (or the current θ when null). Does not disturb training state.
   */
  logits(params: Float32Array | null, batch: Batch): Promise<Float32Array>;
  /** Loss and full gradient at the current θ, without an optimizer step (tests compare it with the CPU). */
  lossAndGrad(batch: Batch): Promise<{ loss: number; grad: Float32Array }>;
  /**
   * Where a step's time goes: runs each dispatch of one training step on its own, `repeats` times,
   * and returns wall milliseconds per dispatch (for benchmarks; it changes θ like `repeats` steps).
   */
  profileStep(batch: Batch, repeats?: number): Promise<{ name: string; ms: number }[]>;
}

/** Engine-only knobs beyond the Trainer contract (tests and benches). */
export type EngineOptions = {
  policy?: Partial<KernelPolicy>;
  /** Rows of logits per chunk (default: memory-plan.ts). */
  logitChunkRows?: number;
  /** Assume at most this many bytes per buffer binding (default: the device's limit), so the split
   * parameter paths run at small sizes too. */
  maxBindingBytes?: number;
};

/** Loss slots held on the GPU before losses() must drain them to the CPU. */
const lossSlots = 4096;

function buildPlan(gpu: Gpu, model: ModelConfig, n: number, b: PlanBuffers): Promise<Plan> {
  // each kind's plan (shared/models/<kind>/runtime.ts); the GPT chunks its head (models/gpt.ts)
  return runtimeOf(model).buildPlan(gpu, model, n, b);
}

function batchRows(batch: Batch): number {
  if (!Number.isInteger(batch.n) || batch.n <= 0) throw new Error(`batch.n must be a positive integer, got ${batch.n}`);
  return batch.n;
}

// One device per GPU object, shared by its trainers so compiled pipelines are reused (compiling is the
// slow part on SwiftShader); each trainer owns and frees its own buffers.
const devices = new WeakMap<GPU, Promise<Gpu>>();

async function deviceFor(gpuApi: GPU | undefined, storageBytes: number, preferBytes: number, what: string): Promise<Gpu> {
  if (!gpuApi) return new Gpu(await acquireDevice(gpuApi));
  const known = await devices.get(gpuApi)?.catch(() => undefined);
  // reused when it holds the largest unsplittable buffer and as much of θ in one binding as the adapter would
  const fits = (g: Gpu) => {
    const a = g.dev.adapter.limits, have = Math.min(a.maxStorageBufferBindingSize, a.maxBufferSize);
    return g.maxBindingBytes >= Math.max(storageBytes, Math.min(preferBytes, have));
  };
  if (known && !known.lost && fits(known)) return known;
  const fresh = acquireDevice(gpuApi, { storageBytes, preferBytes, what }).then((d) => new Gpu(d));
  devices.set(gpuApi, fresh);
  return fresh;
}

export async function createWebGpuTrainer(gpuApi: GPU | undefined, model: ModelConfig, opts: TrainOptions, engine: EngineOptions = {}): Promise<WebGpuTrainer> {
  const count = paramCount(model);
  const unsplit = planMemory(model, opts.batchSize, { logitChunkRows: engine.logitChunkRows });
  const what = `training this ${model.kind} (${count} parameters) at batch size ${opts.batchSize} (its largest buffer is ${unsplit.largestBuffer.name})`;
  const root = await deviceFor(gpuApi, unsplit.largestBuffer.bytes, bufferBytes(count), what);
  const gpu = root.child(engine.policy ?? {}, engine.maxBindingBytes ?? Infinity);
  const dev = root.dev;
  // θ, its gradient and AdamW's state in segments of what one binding holds (one, unless the model is bigger)
  const place = placeParams(model, gpu.maxBindingBytes);
  const memoryPlan = planMemory(model, opts.batchSize, { logitChunkRows: engine.logitChunkRows, bindingBytes: gpu.maxBindingBytes });
  // An allocation the device cannot back surfaces as an out-of-memory error, reported with the plan.
  gpu.device.pushErrorScope('out-of-memory');
  const theta = new ParamBuffers(gpu, place, 'theta'), grad = new ParamBuffers(gpu, place, 'grad');
  const m = new ParamBuffers(gpu, place, 'adam.m'), v = new ParamBuffers(gpu, place, 'adam.v');
  let base: Float32Array | null = null; // θ at load(), for Δ (CPU side)
  const norm = gpu.buffer(4, 'grad.norm'), partial = gpu.buffer(sumsqPartials * place.segments.length, 'grad.norm.partial');
  const losses = gpu.buffer(lossSlots, 'losses');
  const stepU = gpu.uniform(packStep(0, 1, opts.adamw), 'step');
  const clip = opts.clipNorm > 0 && Number.isFinite(opts.clipNorm);
  const adamwDispatches = await Promise.all(place.segments.map(async (s, i) => {
    const params = gpu.uniform(packAdamwParams(s.floats, opts.adamw, opts.clipNorm), 'adamw.params');
    const d = await adamw(gpu, s.floats, { params, step: stepU, theta: theta.buffers[i], grad: grad.buffers[i], m: m.buffers[i], v: v.buffers[i], norm });
    return place.segments.length > 1 ? { ...d, name: `adamw.${i}` } : d;
  }));
  const gradParts = place.segments.map((s, i) => ({ buf: grad.buffers[i], n: s.floats }));
  const normDispatches = clip ? await globalNorm(gpu, gradParts, partial, stepU, norm) : [];

  // One plan per batch size: forward, loss and backward through the same activation buffers.
  type StepPlan = { plan: Plan; tail: Dispatch[] };
  const trainPlans = new Map<number, Promise<StepPlan>>();
  const trainPlan = (n: number) => {
    let p = trainPlans.get(n);
    if (!p) {
      p = (async () => {
        const plan = await buildPlan(gpu, model, n, { theta, grad, logitChunkRows: engine.logitChunkRows });
        const mean = await meanLoss(gpu, plan.rowLoss, plan.rows, stepU, losses);
        return { plan, tail: [...plan.chunks.flatMap((c) => [...c.logits, ...c.loss]), mean] };
      })();
      trainPlans.set(n, p);
    }
    return p;
  };
  // The task's batch size is planned now, so a device that cannot hold it fails here, not mid-task.
  let failed: unknown = null;
  await trainPlan(opts.batchSize).catch((e: unknown) => { failed = e; });
  const oom = await gpu.device.popErrorScope();
  if (oom || failed) {
    gpu.releaseAll();
    if (oom) throw new Error(`${what} needs ${memoryPlan.total} bytes of GPU memory; this device could not allocate them (${oom.message})`);
    throw failed;
  }

  let t = 0; // optimizer steps since load()
  let drained: number[] = []; // losses already read back from full slot buffers
  let slot = 0;
  let steps = 0;
  let loaded = false;
  const q = gpu.device.queue;
  // At most this many steps queued ahead of the GPU, so batch uploads do not pile up over H steps.
  const maxInFlight = 2;
  const inFlight: Promise<unknown>[] = [];
  const alive = (what: string) => {
    if (root.lost) throw new Error(`${what}: the WebGPU device was lost; this task failed (fall back to the CPU trainer)`);
  };

  const trainer: WebGpuTrainer = {
    backend: 'webgpu',
    model,
    adapterInfo: dev.adapterInfo,
    features: dev.features,
    policy: gpu.policy,
    get gpuSteps() { return steps; },
    get liveBuffers() { return gpu.liveBuffers; },
    get allocatedBytes() { return gpu.storageBytes; },
    memoryPlan,
    async load(params) {
      if (params.length !== count) throw new Error(`load: got ${params.length} parameters, the ${model.kind} model has ${count}`);
      theta.write(params);
      base = params.slice();
      m.zero();
      v.zero();
      t = 0; slot = 0; drained = []; loaded = true;
    },
    async step(batch) {
      if (!loaded) throw new Error('step: call load(params) first');
      alive('step');
      const { plan, tail } = await trainPlan(batchRows(batch));
      while (inFlight.length >= maxInFlight) await inFlight.shift();
      plan.write(batch);
      if (slot === lossSlots) { drained.push(...(await gpu.read(losses, 0, lossSlots))); slot = 0; }
      t += 1;
      q.writeBuffer(stepU, 0, packStep(slot, t, opts.adamw));
      const enc = gpu.device.createCommandEncoder({ label: `step ${t}` });
      gpu.record(enc, [...plan.forward, ...tail, ...plan.backward, ...normDispatches, ...adamwDispatches]);
      q.submit([enc.finish()]);
      inFlight.push(q.onSubmittedWorkDone());
      slot += 1;
      steps += 1;
    },
    async losses() {
      alive('losses');
      const recent = slot > 0 ? await gpu.read(losses, 0, slot) : new Float32Array(0);
      return [...drained, ...recent];
    },
    async delta() {
      alive('delta');
      if (!base) throw new Error('delta: call load(params) first');
      // Δ = θ_base − θ, in place in the one readback (no device buffer for θ_base or Δ).
      const out = await theta.read();
      for (let i = 0; i < count; i++) out[i] = base[i] - out[i];
      return out;
    },
    async logits(params, batch) {
      const n = batchRows(batch);
      if (params && params.length !== count) throw new Error(`logits: got ${params.length} parameters, the ${model.kind} model has ${count}`);
      const { plan } = await trainPlan(n);
      // θ waits in the gradient buffers (rewritten by every step's backward anyway) while `params` run.
      if (params) {
        theta.copyTo(grad);
        theta.write(params);
      }
      try {
        plan.write(batch);
        gpu.run(plan.forward);
        const out = new Float32Array(plan.rows * plan.classes);
        for (const c of plan.chunks) {
          gpu.run(c.logits);
          out.set(await gpu.read(plan.logits, 0, c.rows * plan.classes), c.start * plan.classes);
        }
        return out;
      } finally {
        if (params) grad.copyTo(theta);
      }
    },
    async lossAndGrad(batch) {
      if (!loaded) throw new Error('lossAndGrad: call load(params) first');
      const { plan, tail } = await trainPlan(batchRows(batch));
      plan.write(batch);
      // Uses the next loss slot as scratch; the next step overwrites it.
      q.writeBuffer(stepU, 0, packStep(slot % lossSlots, Math.max(t, 1), opts.adamw));
      gpu.run([...plan.forward, ...tail, ...plan.backward]);
      const [loss] = await gpu.read(losses, slot % lossSlots, 1);
      return { loss, grad: await grad.read() };
    },
    async profileStep(batch, repeats = 3) {
      if (!loaded) throw new Error('profileStep: call load(params) first');
      const { plan, tail } = await trainPlan(batchRows(batch));
      plan.write(batch);
      q.writeBuffer(stepU, 0, packStep(slot % lossSlots, Math.max(t, 1), opts.adamw));
      const all = [...plan.forward, ...tail, ...plan.backward, ...normDispatches, ...adamwDispatches];
      gpu.run(all);
      await q.onSubmittedWorkDone();
      const out: { name: string; ms: number }[] = [];
      for (const d of all) {
        const t0 = performance.now();
        for (let r = 0; r < repeats; r++) gpu.run([d]);
        await q.onSubmittedWorkDone();
        out.push({ name: d.name, ms: (performance.now() - t0) / repeats });
      }
      return out;
    },
    destroy() {
      gpu.releaseAll();
      trainPlans.clear();
    },
  };
  return trainer;
}

/** Forward-only helper: logits of `params` on `batch`, on a device of its own. */
export async function webGpuLogits(gpuApi: GPU | undefined, model: ModelConfig, params: Float32Array, batch: Batch): Promise<Float32Array> {
  const tr = await createWebGpuTrainer(gpuApi, model, { batchSize: batch.n, adamw: { lr: 0, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 }, clipNorm: 0 });
  try {
    return await tr.logits(params, batch);
  } finally {
    tr.destroy();
  }
}
