// The CPU implementation of the Trainer contract: each kind's CPU reference (its runtime) with AdamW and
// global-norm clipping. Used by simulated volunteers, tests and as a fallback.
import { adamwState, adamwStep, clipGradNorm, type AdamWState } from '../reference/adamw.ts';
import { runtimeOf } from '../models/runtimes.ts';
import { paramCount, type ModelConfig } from '../models/config.ts';
import type { Batch, Trainer, TrainOptions } from './trainer.ts';

type LossAndGrad = (params: Float32Array, batch: Batch) => Promise<{ loss: number; grad: Float32Array }>;

function lossAndGradFor(model: ModelConfig): LossAndGrad {
  const runtime = runtimeOf(model);
  return async (params, batch) => runtime.lossAndGrad(model, params, batch);
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
