// Deterministic test cases shared by the Node side (CPU reference) and the page (WebGPU engine):
// both build the same params and batches from seeds, so only small results cross page.evaluate.
import { initParams, type GptConfig, type MlpConfig, type ModelConfig } from '../../../shared/models/config.ts';
import type { Batch, TrainOptions } from '../../../shared/train/trainer.ts';
import { rng } from '../../../shared/util/rng.ts';

export type TrainCase = { name: string; model: ModelConfig; opts: TrainOptions; seed: number; steps: number; n: number };

const mlp: MlpConfig = { kind: 'mlp', inputs: 70, hidden: [33], classes: 10 };
const gpt: GptConfig = { kind: 'gpt', vocab: 23, context: 12, layers: 2, heads: 2, width: 16 };

export const trainCases: Record<string, TrainCase> = {
  mlp20: { name: 'mlp20', model: mlp, seed: 5, steps: 20, n: 16, opts: { batchSize: 16, clipNorm: 1, adamw: { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 } } },
  gpt5: { name: 'gpt5', model: gpt, seed: 6, steps: 5, n: 4, opts: { batchSize: 4, clipNorm: 1, adamw: { lr: 3e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 } } },
};

export function caseParams(c: TrainCase): Float32Array {
  return initParams(c.model, c.seed);
}

/** The case's batches, one per step, the same on every side. */
export function caseBatches(c: TrainCase): Batch[] {
  const r = rng(c.seed * 1000 + 1);
  return Array.from({ length: c.steps }, (): Batch => {
    if (c.model.kind === 'mlp') {
      const { inputs, classes } = c.model;
      return { kind: 'labelled', n: c.n, x: Float32Array.from({ length: c.n * inputs }, () => r.normal()), y: Int32Array.from({ length: c.n }, () => r.int(classes)) };
    }
    const { vocab, context } = c.model;
    return { kind: 'tokens', n: c.n, tokens: Int32Array.from({ length: c.n * (context + 1) }, () => r.int(vocab)) };
  });
}

/** Matmul operands for a check: A [M,K] (or [K,M] when transA), B [K,N] (or [N,K] when transB). */
export type MatmulCase = { M: number; N: number; K: number; transA: boolean; transB: boolean; seed: number };

export function matmulOperands(c: MatmulCase): { a: Float32Array; b: Float32Array } {
  const r = rng(c.seed);
  return {
    a: Float32Array.from({ length: c.M * c.K }, () => r.normal()),
    b: Float32Array.from({ length: c.K * c.N }, () => r.normal()),
  };
}

/** float64 reference of op(A)·op(B). */
export function matmulReference(c: MatmulCase, a: Float32Array, b: Float32Array): Float64Array {
  const out = new Float64Array(c.M * c.N);
  for (let m = 0; m < c.M; m++) {
    for (let n = 0; n < c.N; n++) {
      let s = 0;
      for (let k = 0; k < c.K; k++) {
        const av = c.transA ? a[k * c.M + m] : a[m * c.K + k];
        const bv = c.transB ? b[n * c.K + k] : b[k * c.N + n];
        s += av * bv;
      }
      out[m * c.N + n] = s;
    }
  }
  return out;
}
