// The GPT's heavy parts: WebGPU plan (engine/models/gpt.ts), CPU reference (reference/gpt.ts), ONNX graph.
import { buildGptPlan } from '../../engine/models/gpt.ts';
import { gptEvaluate, gptLossAndGrad } from '../../reference/gpt.ts';
import type { LabelledBatch } from '../../reference/mlp.ts';
import type { Batch } from '../../train/trainer.ts';
import { defineModelRuntime } from '../kind.ts';
import type { GptConfig } from './config.ts';
import { exportGpt } from './onnx.ts';

function tokens(batch: Batch | LabelledBatch): Extract<Batch, { kind: 'tokens' }> {
  if (!('kind' in batch) || batch.kind !== 'tokens') throw new Error(`a gpt model needs token batches, got kind=${'kind' in batch ? String(batch.kind) : 'labelled rows'}`);
  return batch as Extract<Batch, { kind: 'tokens' }>;
}

export const gptRuntime = defineModelRuntime<GptConfig>({
  buildPlan: buildGptPlan,
  lossAndGrad(c, params, batch) {
    const b = tokens(batch);
    return gptLossAndGrad(c, params, b.tokens, b.n);
  },
  evaluate(c, params, batch) {
    const b = tokens(batch);
    return gptEvaluate(c, params, b.tokens, b.n);
  },
  exportOnnx: (c, params, o) => exportGpt(c, params, o.seqLen ?? c.context, o.producer),
});
