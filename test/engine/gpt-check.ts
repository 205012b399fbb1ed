// One check the engine's GPT tests share: a trainer's loss, gradient and logits against the CPU
// reference (shared/reference/gpt.ts), and θ intact after evaluating other parameters.
import { expect } from 'vitest';
import type { WebGpuTrainer } from '../../shared/engine/trainer.ts';
import type { GptConfig } from '../../shared/models/config.ts';
import { gptLogits, gptLossAndGrad } from '../../shared/reference/gpt.ts';
import type { Batch } from '../../shared/train/trainer.ts';
import { rng } from '../../shared/util/rng.ts';
import { closeness, randn } from './oracle.ts';

export function gptBatch(gpt: GptConfig, seed: number, n: number): Batch & { kind: 'tokens' } {
  const r = rng(seed);
  return { kind: 'tokens', tokens: Int32Array.from({ length: n * (gpt.context + 1) }, () => r.int(gpt.vocab)), n };
}

/** `tr` holds `params`: its loss and gradient on `batch`, and its logits at other parameters (seeded by
 * `otherSeed`), match the CPU reference; then a step starts from `params` again (θ came back from wherever
 * the logits pass parked it). */
export async function expectGptMatchesReference(tr: WebGpuTrainer, gpt: GptConfig, params: Float32Array,
  batch: Batch & { kind: 'tokens' }, otherSeed: number): Promise<void> {
  const got = await tr.lossAndGrad(batch);
  const want = gptLossAndGrad(gpt, params, batch.tokens, batch.n);
  expect(got.loss).toBeCloseTo(want.loss, 5);
  expect(closeness(got.grad, want.grad, 1e-5, 1e-3)).toBeLessThan(1);
  const T = gpt.context;
  const inputs = Int32Array.from({ length: batch.n * T }, (_, i) => batch.tokens[Math.floor(i / T) * (T + 1) + (i % T)]);
  const other = randn(params.length, otherSeed, 0.02);
  expect(closeness(await tr.logits(other, batch), gptLogits(gpt, other, inputs, batch.n), 1e-5, 1e-4)).toBeLessThan(1);
  await tr.step(batch);
  expect((await tr.losses())[0]).toBeCloseTo(want.loss, 5);
}
