// The CPU implementation of the Trainer contract: the reference MLP and GPT with AdamW and
// global-norm clipping. Used by simulated volunteers, tests and as a fallback.
import { adamwState, adamwStep, clipGradNorm, type AdamWState } from '../reference/adamw.ts';
import { mlpLossAndGrad } from '../reference/mlp.ts';
import { gptLossAndGrad } from '../reference/gpt.ts';
import { paramCount, type ModelConfig } from '../models/config.ts';
import type { Batch, Trainer, TrainOptions } from './trainer.ts';

type LossAndGrad = (params: Float32Array, batch: Batch) => Promise<{ loss: number; grad: Float32Array }>;

function lossAndGradFor(model: ModelConfig): LossAndGrad {
  if (model.kind === 'mlp') {
    return async (params, batch) => {
      if (batch.kind !== 'labelled') throw new Error(`the mlp trainer needs labelled batches, got kind=${batch.kind}`);
      return mlpLossAndGrad(model, params, batch);
    };
  }
  return async (params, batch) => {
    if (batch.kind !== 'tokens') throw new Error(`the gpt trainer needs token batches, got kind=${batch.kind}`);
    return gptLossAndGrad(model, params, batch.tokens, batch.n);
  };
}

export function createCpuTrainer(model: ModelConfig, opts: TrainOptions): Trainer {
  const n = paramCount(model);
  const lossAndGrad = lossAndGradFor(model);
  let base = new Float32Array(n), params = new Float32Array(n);
  let state: AdamWState = adamwState(n);
  let losses: number[] = [];
  return {
    backend: 'cpu',
    model,
    async load(p) {
      if (p.length !== n) throw new Error(`load: got ${p.length} parameters, the model has ${n}`);
      base = Float32Array.from(p);
      params = Float32Array.from(p);
      state = adamwState(n);
      losses = [];
    },
    async step(batch) {
      const { loss, grad } = await lossAndGrad(params, batch);
      if (opts.clipNorm > 0) clipGradNorm(grad, opts.clipNorm);
      adamwStep(params, grad, state, opts.adamw);
      losses.push(loss);
    },
    async losses() {
      return losses.slice();
    },
    async delta() {
      const d = new Float32Array(n);
      for (let i = 0; i < n; i++) d[i] = base[i] - params[i];
      return d;
    },
    destroy() {
      losses = [];
    },
  };
}
