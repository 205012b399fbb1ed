// The MLP's heavy parts: WebGPU plan (engine/models/mlp.ts), CPU reference (reference/mlp.ts), ONNX graph.
import { buildMlpPlan } from '../../engine/models/mlp.ts';
import { mlpEvaluate, mlpLossAndGrad, type LabelledBatch } from '../../reference/mlp.ts';
import type { Batch } from '../../train/trainer.ts';
import { defineModelRuntime } from '../kind.ts';
import type { MlpConfig } from './config.ts';
import { exportMlp } from './onnx.ts';

/** Relay code also passes its held-out rows, which carry no kind tag. */
function labelled(batch: Batch | LabelledBatch): LabelledBatch {
  if ('kind' in batch && batch.kind !== 'labelled') throw new Error(`an mlp model needs labelled batches, got kind=${batch.kind}`);
  return batch as LabelledBatch;
}

export const mlpRuntime = defineModelRuntime<MlpConfig>({
  buildPlan: buildMlpPlan,
  lossAndGrad: (c, params, batch) => mlpLossAndGrad(c, params, labelled(batch)),
  evaluate: (c, params, batch) => mlpEvaluate(c, params, labelled(batch)),
  exportOnnx: (c, params, o) => exportMlp(c, params, o.producer),
});
