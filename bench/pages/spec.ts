// What the engine benchmark compares: the same models, batches and optimizer for both implementations.
import type { GptConfig, MlpConfig } from '../../shared/models/config.ts';
import type { AdamWOptions } from '../../shared/reference/adamw.ts';
import { initParams } from '../../shared/models/config.ts';
import { rng } from '../../shared/util/rng.ts';

export const benchMlp: MlpConfig = { kind: 'mlp', inputs: 784, hidden: [256], classes: 10 };
export const benchGpt: GptConfig = { kind: 'gpt', vocab: 65, context: 64, layers: 2, heads: 4, width: 128 };
export const mlpBatch = 64;
export const gptBatch = 8;
/** Plain Adam (no weight decay, no clipping): exactly what tf.train.adam does. */
export const benchAdam: AdamWOptions = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 };
export const matmulSizes = [256, 512, 1024, 2048];

/** Timing of one implementation on one model: ms per step over `steps` steps after warm-up. */
export type StepTiming = { msPerStep: number; steps: number; firstLoss: number; lastLoss: number };

/** Same parameters and batch on every side (seeded). */
export function mlpBenchData() {
  const r = rng(11);
  const x = Float32Array.from({ length: mlpBatch * benchMlp.inputs }, () => r.next());
  const y = Int32Array.from({ length: mlpBatch }, () => r.int(benchMlp.classes));
  return { params: initParams(benchMlp, 1), x, y, n: mlpBatch };
}

export function gptBenchData() {
  const r = rng(12);
  const tokens = Int32Array.from({ length: gptBatch * (benchGpt.context + 1) }, () => r.int(benchGpt.vocab));
  return { params: initParams(benchGpt, 2), tokens, n: gptBatch };
}
