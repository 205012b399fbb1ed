// The engine learns for real: an MLP trained on MNIST on the GPU reaches ≥ 90 % held-out accuracy,
// and a char-level GPT overfits a short text (loss below 0.5 nats from ln(vocab) ≈ 3.3 at init).
import { beforeAll, describe, expect, it } from 'vitest';
import { loadMnist } from '../../server/data/mnist.ts';
import { nodeGpu } from '../../server/gpu/dawn.ts';
import { createWebGpuTrainer } from '../../shared/engine/trainer.ts';
import { defaultMlp, initParams, type GptConfig } from '../../shared/models/config.ts';
import type { Batch } from '../../shared/train/trainer.ts';
import { rng } from '../../shared/util/rng.ts';

let gpu: GPU;
beforeAll(async () => { gpu = await nodeGpu(); });

describe('training on the GPU', () => {
  it('trains the default MLP on MNIST to at least 90 % held-out accuracy in 300 steps', async () => {
    const { shards, heldOut } = loadMnist();
    const n = 64, steps = 300;
    const tr = await createWebGpuTrainer(gpu, defaultMlp, { batchSize: n, adamw: { lr: 2e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 }, clipNorm: 5 });
    await tr.load(initParams(defaultMlp, 7));
    const r = rng(8);
    const x = new Float32Array(n * 784), y = new Int32Array(n);
    for (let s = 0; s < steps; s++) {
      const shard = shards[s % shards.length];
      for (let i = 0; i < n; i++) {
        const k = r.int(shard.n);
        x.set(shard.x.subarray(k * 784, (k + 1) * 784), i * 784);
        y[i] = shard.y[k];
      }
      await tr.step({ kind: 'labelled', x, y, n });
    }
    const losses = await tr.losses();
    expect(losses).toHaveLength(steps);
    let correct = 0;
    const chunk = 500;
    for (let s = 0; s < heldOut.n; s += chunk) {
      const m = Math.min(chunk, heldOut.n - s);
      const batch: Batch = { kind: 'labelled', x: heldOut.x.subarray(s * 784, (s + m) * 784), y: heldOut.y.subarray(s, s + m), n: m };
      const logits = await tr.logits(null, batch);
      for (let i = 0; i < m; i++) {
        let arg = 0;
        for (let c = 1; c < 10; c++) if (logits[i * 10 + c] > logits[i * 10 + arg]) arg = c;
        if (arg === heldOut.y[s + i]) correct++;
      }
    }
    const accuracy = correct / heldOut.n;
    console.log(`MNIST: held-out accuracy ${(accuracy * 100).toFixed(1)} % after ${steps} steps, last loss ${losses[steps - 1].toFixed(3)}`);
    expect(accuracy).toBeGreaterThanOrEqual(0.9);
    tr.destroy();
  });

  it('overfits a char-level GPT on a short text: loss falls from ≈ ln(vocab) to below 0.5', async () => {
    const text = 'a volunteer opens a tab, the tab trains the model, and the model learns the text by heart. ';
    const chars = [...new Set(text)].sort();
    const ids = [...text].map((ch) => chars.indexOf(ch));
    const config: GptConfig = { kind: 'gpt', vocab: chars.length, context: 16, layers: 2, heads: 2, width: 32 };
    const n = 8, steps = 150;
    const tr = await createWebGpuTrainer(gpu, config, { batchSize: n, adamw: { lr: 1e-2, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0 }, clipNorm: 1 });
    await tr.load(initParams(config, 3));
    const r = rng(4);
    const tokens = new Int32Array(n * 17);
    for (let s = 0; s < steps; s++) {
      for (let b = 0; b < n; b++) {
        const start = r.int(ids.length);
        for (let t = 0; t < 17; t++) tokens[b * 17 + t] = ids[(start + t) % ids.length];
      }
      await tr.step({ kind: 'tokens', tokens, n });
    }
    const losses = await tr.losses();
    const tail = losses.slice(-10).reduce((a, b) => a + b, 0) / 10;
    console.log(`GPT overfit: loss ${losses[0].toFixed(3)} → ${tail.toFixed(3)} (mean of last 10) in ${steps} steps, vocab ${chars.length}`);
    expect(losses[0]).toBeGreaterThan(Math.log(chars.length) - 0.3);
    expect(tail).toBeLessThan(0.5);
    tr.destroy();
  });
});
