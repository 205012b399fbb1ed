// The engine's memory: what the memory plan says it allocates against what the device wrapper counts,
// the device sized to the plan (not to the parameter count), refusals that name needed vs available,
// and the chunked GPT head giving the CPU reference's loss, gradient and logits.
import { beforeAll, describe, expect, it } from 'vitest';
import { nodeGpu } from '../../server/gpu/dawn.ts';
import { planMemory, planProblem, typicalAdapter } from '../../shared/engine/memory-plan.ts';
import { createWebGpuTrainer } from '../../shared/engine/trainer.ts';
import { initParams, paramCount, type GptConfig, type MlpConfig } from '../../shared/models/config.ts';
import type { TrainOptions } from '../../shared/train/trainer.ts';
import { expectGptMatchesReference, gptBatch } from './gpt-check.ts';

let gpu: GPU;
beforeAll(async () => { gpu = await nodeGpu(); });

const gpt: GptConfig = { kind: 'gpt', vocab: 23, context: 7, layers: 2, heads: 2, width: 12 };
const mlp: MlpConfig = { kind: 'mlp', inputs: 70, hidden: [33, 17], classes: 10 };
const opts = (batchSize: number): TrainOptions => ({ batchSize, adamw: { lr: 3e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 }, clipNorm: 1 });

describe('memory plan against what the engine allocates', () => {
  for (const [name, model, n, chunk] of [['GPT', gpt, 3, undefined], ['GPT with a 5-row logit chunk', gpt, 3, 5], ['MLP', mlp, 9, undefined]] as const) {
    it(`${name}: the plan's total is what the device wrapper counts (within 5 %), 16 bytes per parameter for state`, async () => {
      const tr = await createWebGpuTrainer(gpu, model, opts(n), { logitChunkRows: chunk });
      const plan = planMemory(model, n, { logitChunkRows: chunk });
      expect(tr.memoryPlan).toEqual(plan);
      expect(Math.abs(tr.allocatedBytes - plan.total) / plan.total).toBeLessThan(0.05);
      const count = paramCount(model), padded = Math.ceil(count / 4) * 4;
      expect(plan.bytes.params + plan.bytes.grads + plan.bytes.optimizer).toBe(16 * padded);
      tr.destroy();
    });
  }

  it('a GPT at context 1024 keeps no T×T scores and no batch × context × vocabulary logits', () => {
    const big: GptConfig = { kind: 'gpt', vocab: 50_257, context: 1024, layers: 2, heads: 4, width: 64 };
    const plan = planMemory(big, 8);
    expect(plan.logitChunkRows).toBeLessThan(8 * 1024);
    expect(plan.bytes.logits).toBeLessThanOrEqual(64 * 2 ** 20);
    const scores = 8 * 4 * 1024 * 1024 * 4; // what one layer's stored probabilities would take
    for (const b of plan.buffers) expect(b.bytes, b.name).toBeLessThan(scores);
  });

  it('refuses, naming needed and available, a buffer over the adapter binding or a total over the budget', () => {
    const gpt2small: GptConfig = { kind: 'gpt', vocab: 50_257, context: 1024, layers: 12, heads: 12, width: 768 };
    expect(planProblem(planMemory(gpt2small, 1), typicalAdapter)).toBeNull();
    expect(planProblem(planMemory(gpt2small, 8), typicalAdapter)).toMatch(/training needs \d+ bytes .*activations.*the adapter budget is 4294967296 bytes/);
    const wide: MlpConfig = { kind: 'mlp', inputs: 70_000, hidden: [4000], classes: 10 };
    expect(planProblem(planMemory(wide, 1), typicalAdapter)).toMatch(/largest buffer \(theta:l0\) needs 1120\d+ bytes .*allows 1073741824 bytes .* in one buffer/);
  });
});

describe('device sized to the memory plan', () => {
  it('gives a buffer over the 128 MiB default when the adapter allows it, and trains a step', async () => {
    // 1,000 rows of 36,000 inputs: the input batch alone is 144 MB, while the model has 36k parameters.
    const model: MlpConfig = { kind: 'mlp', inputs: 36_000, hidden: [], classes: 2 };
    const n = 1000;
    const tr = await createWebGpuTrainer(gpu, model, opts(n));
    expect(tr.memoryPlan.largestBuffer).toEqual({ name: 'mlp.x', bytes: 144_000_000 });
    await tr.load(initParams(model, 1));
    const y = Int32Array.from({ length: n }, (_, i) => i % 2);
    await tr.step({ kind: 'labelled', x: new Float32Array(n * model.inputs).fill(0.01), y, n });
    const [loss] = await tr.losses();
    expect(loss).toBeGreaterThan(0);
    expect(loss).toBeLessThan(1);
    tr.destroy();
  });

  it('refuses a model whose largest buffer the adapter cannot hold, before allocating, naming the buffer', async () => {
    const model: MlpConfig = { kind: 'mlp', inputs: 200_000, hidden: [2000], classes: 10 }; // θ is 1.6 GB
    await expect(createWebGpuTrainer(gpu, model, opts(1))).rejects.toThrow(/largest buffer is theta:l0\) needs a 1600\d+-byte storage buffer; this adapter allows at most \d+/);
  });
});

describe('GPT head in chunks of rows', () => {
  it('gives the CPU reference loss, every gradient and the logits with a 5-row chunk (21 rows)', async () => {
    const params = initParams(gpt, 7);
    const tr = await createWebGpuTrainer(gpu, gpt, opts(3), { logitChunkRows: 5 });
    await tr.load(params);
    // evaluating other parameters leaves θ as it was
    await expectGptMatchesReference(tr, gpt, params, gptBatch(gpt, 8, 3), 9);
    tr.destroy();
  });
});
