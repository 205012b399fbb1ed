// The benchmark's engine side: our WebGPU trainer on the same models and batches as the tfjs side,
// our matmul's GFLOP/s, and a per-kernel profile of one GPT step (what bounds the step time).
import { acquireDevice, Gpu, type Dispatch } from '../../shared/engine/device.ts';
import { at, matmul } from '../../shared/engine/kernels/matmul.ts';
import { buildGptPlan } from '../../shared/engine/models/gpt.ts';
import { ParamBuffers } from '../../shared/engine/param-buffers.ts';
import { placeSegments } from '../../shared/engine/param-segments.ts';
import { createWebGpuTrainer } from '../../shared/engine/trainer.ts';
import { initParams, paramCount, paramLayout, type ModelConfig } from '../../shared/models/config.ts';
import type { Batch } from '../../shared/train/trainer.ts';
import { benchAdam, benchGpt, gptBatch, type StepTiming } from './spec.ts';

/** Warm-up steps (compiles and first-use costs), then `steps` steps timed up to their last loss readback. */
export async function timeEngine(model: ModelConfig, params: Float32Array, batch: Batch, warmup: number, steps: number): Promise<StepTiming> {
  const tr = await createWebGpuTrainer(navigator.gpu, model, { batchSize: batch.n, adamw: benchAdam, clipNorm: 0 });
  try {
    await tr.load(params);
    for (let i = 0; i < warmup; i++) await tr.step(batch);
    const before = await tr.losses(); // readback: the warm-up has finished on the GPU
    const t0 = performance.now();
    for (let i = 0; i < steps; i++) await tr.step(batch);
    const all = await tr.losses(); // one readback, after every timed step has run
    const ms = (performance.now() - t0) / Math.max(1, steps);
    return { msPerStep: ms, steps, firstLoss: (before[0] ?? all[0]), lastLoss: all[all.length - 1] };
  } finally {
    tr.destroy();
  }
}

async function timeDispatches(gpu: Gpu, dispatches: Dispatch[], reps: number): Promise<number> {
  const enc = gpu.device.createCommandEncoder();
  for (let r = 0; r < reps; r++) gpu.record(enc, dispatches);
  const t0 = performance.now();
  gpu.device.queue.submit([enc.finish()]);
  await gpu.device.queue.onSubmittedWorkDone();
  return (performance.now() - t0) / reps;
}

/** GFLOP/s of C = A·B for square sizes (2n³ flops), fp32, one pipeline per size. */
export async function matmulGflops(sizes: number[]): Promise<{ size: number; gflops: number; ms: number }[]> {
  const gpu = new Gpu(await acquireDevice(navigator.gpu, { storageBytes: 4 * Math.max(...sizes) ** 2 }));
  const out: { size: number; gflops: number; ms: number }[] = [];
  try {
    for (const s of sizes) {
      const a = new Float32Array(s * s).map((_, i) => ((i * 7919) % 1000) / 1000 - 0.5);
      const A = gpu.upload(a, 'A'), B = gpu.upload(a, 'B'), C = gpu.buffer(s * s, 'C');
      const d = await matmul(gpu, { a: at(A), b: at(B), c: at(C), M: s, N: s, K: s });
      // Warm-up once, at the smallest size: every size shares the one compiled pipeline.
      if (s === sizes[0]) await timeDispatches(gpu, [d], 1);
      const reps = Math.max(1, Math.round(2 ** 30 / (2 * s ** 3))); // about a GFLOP per measurement
      const ms = await timeDispatches(gpu, [d], reps);
      out.push({ size: s, ms, gflops: (2 * s ** 3) / (ms * 1e6) });
      for (const b of [A, B, C]) gpu.release(b);
    }
  } finally {
    gpu.releaseAll();
    gpu.device.destroy();
  }
  return out;
}

/** Milliseconds per kernel of one GPT training step (forward + backward), summed by kernel kind. */
export async function profileGptStep(tokens: Int32Array): Promise<{ kernel: string; ms: number; count: number }[]> {
  const count = paramCount(benchGpt);
  const gpu = new Gpu(await acquireDevice(navigator.gpu, { storageBytes: count * 4 }));
  try {
    const place = placeSegments(paramLayout(benchGpt), Math.ceil(count / 4) * 4, new Set()); // one segment
    const theta = new ParamBuffers(gpu, place, 'theta'), grad = new ParamBuffers(gpu, place, 'grad');
    theta.write(initParams(benchGpt, 2));
    const plan = await buildGptPlan(gpu, benchGpt, gptBatch, { theta, grad });
    plan.write({ kind: 'tokens', tokens, n: gptBatch });
    const all = [...plan.forward, ...plan.backward];
    await timeDispatches(gpu, all, 1); // warm-up
    const byKind = new Map<string, { ms: number; count: number }>();
    for (const d of all) {
      // "h1.fc2.dw" → "fc2.dw": layers of the same kernel are summed together.
      const kind = d.name.replace(/^h\d+\./, '');
      const ms = Math.min(await timeDispatches(gpu, [d], 1), await timeDispatches(gpu, [d], 1));
      const e = byKind.get(kind) ?? { ms: 0, count: 0 };
      e.ms += ms; e.count += 1;
      byKind.set(kind, e);
    }
    return [...byKind].map(([kernel, e]) => ({ kernel, ...e })).sort((a, b) => b.ms - a.ms);
  } finally {
    gpu.releaseAll();
    gpu.device.destroy();
  }
}
