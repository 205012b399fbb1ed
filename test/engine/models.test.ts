// The engine's MLP and GPT against the CPU references: loss, every parameter's gradient and the
// logits at init, then 20 AdamW steps (with clipping) tracking the CPU trainer's losses and Δ.
import { beforeAll, describe, expect, it } from 'vitest';
import { nodeGpu } from '../../server/gpu/dawn.ts';
import { createWebGpuTrainer, webGpuLogits } from '../../shared/engine/trainer.ts';
import { initParams, paramCount, type GptConfig, type MlpConfig, type ModelConfig } from '../../shared/models/config.ts';
import { gptLogits, gptLossAndGrad } from '../../shared/reference/gpt.ts';
import { mlpLogits, mlpLossAndGrad } from '../../shared/reference/mlp.ts';
import { createCpuTrainer } from '../../shared/train/cpu.ts';
import type { Batch, TrainOptions } from '../../shared/train/trainer.ts';
import { rng } from '../../shared/util/rng.ts';
import { gptBatch as tokenBatch } from './gpt-check.ts';
import { closeness, randn } from './oracle.ts';

let gpu: GPU;
beforeAll(async () => { gpu = await nodeGpu(); });

const mlp: MlpConfig = { kind: 'mlp', inputs: 70, hidden: [33, 17], classes: 10 };
const gpt: GptConfig = { kind: 'gpt', vocab: 11, context: 7, layers: 2, heads: 2, width: 12 };
const opts: TrainOptions = { batchSize: 9, adamw: { lr: 3e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 }, clipNorm: 1 };

function mlpBatch(seed: number, n = 9): Batch & { kind: 'labelled' } {
  const r = rng(seed);
  return { kind: 'labelled', x: randn(n * mlp.inputs, seed), y: Int32Array.from({ length: n }, () => r.int(mlp.classes)), n };
}
const gptBatch = (seed: number, n = 3) => tokenBatch(gpt, seed, n);

/** The first `context` ids of each (context+1)-long sequence: what gptLogits takes. */
function inputsOnly(tokens: Int32Array, n: number): Int32Array {
  const T = gpt.context;
  return Int32Array.from({ length: n * T }, (_, i) => tokens[Math.floor(i / T) * (T + 1) + (i % T)]);
}

function cpuLossAndGrad(model: ModelConfig, params: Float32Array, batch: Batch) {
  if (model.kind === 'mlp' && batch.kind === 'labelled') return mlpLossAndGrad(model, params, batch);
  if (model.kind === 'gpt' && batch.kind === 'tokens') return gptLossAndGrad(model, params, batch.tokens, batch.n);
  throw new Error('mismatched batch');
}

const cases = [
  { name: 'MLP', model: mlp as ModelConfig, batch: mlpBatch },
  { name: 'GPT', model: gpt as ModelConfig, batch: gptBatch },
];

for (const c of cases) {
  describe(`${c.name} on the GPU`, () => {
    it('gives the CPU reference loss and every parameter gradient at init', async () => {
      const params = initParams(c.model, 1);
      const tr = await createWebGpuTrainer(gpu, c.model, opts);
      await tr.load(params);
      const batch = c.batch(2);
      const got = await tr.lossAndGrad(batch);
      const want = cpuLossAndGrad(c.model, params, batch);
      expect(got.loss).toBeCloseTo(want.loss, 5);
      // fp32 vs fp32-with-f64-accumulation: absolute 1e-5 on gradients of size ~0.1–1.
      expect(closeness(got.grad, want.grad, 1e-5, 1e-3)).toBeLessThan(1);
      tr.destroy();
    });

    it('gives the CPU reference logits (forward only, θ untouched)', async () => {
      const params = initParams(c.model, 3);
      const batch = c.batch(4);
      const got = await webGpuLogits(gpu, c.model, params, batch);
      const want = c.model.kind === 'mlp' && batch.kind === 'labelled'
        ? mlpLogits(c.model, params, batch.x, batch.n)
        : gptLogits(gpt, params, inputsOnly((batch as { tokens: Int32Array }).tokens, batch.n), batch.n);
      expect(got.length).toBe(want.length);
      expect(closeness(got, want, 1e-5, 1e-4)).toBeLessThan(1);
    });

    it('tracks the CPU trainer over 20 AdamW steps: losses within 1e-3 and Δ within 1e-4', async () => {
      const params = initParams(c.model, 5);
      const tr = await createWebGpuTrainer(gpu, c.model, opts);
      const cpu = createCpuTrainer(c.model, opts);
      await tr.load(params);
      await cpu.load(params);
      for (let s = 0; s < 20; s++) {
        const batch = c.batch(100 + (s % 4));
        await tr.step(batch);
        await cpu.step(batch);
      }
      const [got, want] = [await tr.losses(), await cpu.losses()];
      expect(got).toHaveLength(20);
      for (let s = 0; s < 20; s++) expect(Math.abs(got[s] - want[s]), `step ${s}`).toBeLessThan(1e-3);
      expect(got[19]).toBeLessThan(got[0]); // it learns
      expect(closeness(await tr.delta(), await cpu.delta(), 1e-4, 1e-2)).toBeLessThan(1);
      expect(tr.gpuSteps).toBe(20);
      tr.destroy();
    });
  });
}

describe('trainer contract on the GPU', () => {
  it('refuses bad input with errors naming the field', async () => {
    const tr = await createWebGpuTrainer(gpu, gpt, opts);
    await expect(tr.step(gptBatch(1))).rejects.toThrow(/load\(params\) first/);
    await expect(tr.load(new Float32Array(3))).rejects.toThrow(/got 3 parameters.*has \d+/);
    await tr.load(initParams(gpt, 1));
    await expect(tr.step(mlpBatch(1))).rejects.toThrow(/token batch, got kind=labelled/);
    const bad = gptBatch(1);
    bad.tokens[5] = 11;
    await expect(tr.step(bad)).rejects.toThrow(/batch.tokens\[5\] = 11 is not a token id in \[0, 11\)/);
    await expect(tr.step({ kind: 'tokens', tokens: new Int32Array(5), n: 3 })).rejects.toThrow(/batch.tokens has 5 ids; expected/);
    expect(await tr.losses()).toEqual([]);
    tr.destroy();
  });

  it('reports a clear error when WebGPU is missing', async () => {
    await expect(createWebGpuTrainer(undefined, mlp, opts)).rejects.toThrow(/WebGPU is not available/);
  });

  it('reuses its buffers across 100 steps and frees every one on destroy', async () => {
    const tr = await createWebGpuTrainer(gpu, mlp, opts);
    await tr.load(initParams(mlp, 1));
    await tr.step(mlpBatch(1));
    const after1 = tr.liveBuffers;
    for (let s = 0; s < 99; s++) await tr.step(mlpBatch(s));
    expect(await tr.losses()).toHaveLength(100);
    expect(tr.liveBuffers).toBe(after1);
    const d = await tr.delta();
    expect(d.length).toBe(paramCount(mlp));
    expect(tr.liveBuffers).toBe(after1);
    tr.destroy();
    expect(tr.liveBuffers).toBe(0);
  });

  it('load() resets θ, the optimizer and the losses', async () => {
    const tr = await createWebGpuTrainer(gpu, mlp, opts);
    const p = initParams(mlp, 2);
    const run = async () => {
      await tr.load(p);
      for (let s = 0; s < 3; s++) await tr.step(mlpBatch(s));
      return { losses: await tr.losses(), delta: await tr.delta() };
    };
    const a = await run(), b = await run();
    expect(b.losses).toEqual(a.losses);
    expect(b.delta).toEqual(a.delta);
    tr.destroy();
  });
});

