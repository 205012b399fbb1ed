// Export of a model zoo model with given parameters to an ONNX model (bytes), so onnxruntime-web can run
// a trained checkpoint ("try the model") and check our engine's forward pass independently.
//
// Graphs (opset 17, every op runs in onnxruntime-web's wasm backend):
//   mlp: input `x` float32 [batch, inputs]            → output `logits` float32 [batch, classes]
//   gpt: input `tokens` int64 [batch, seqLen]          → output `logits` float32 [batch, seqLen, vocab]
//        batch is dynamic; seqLen is fixed at export (option, default = context, 1 ≤ seqLen ≤ context),
//        which lets the causal mask and position rows be constants.
// Each kind's graph is built in shared/models/<kind>/onnx.ts with onnx-graph.ts.
// GELU is written out with elementary ops (tanh form), LayerNorm is the opset-17 LayerNormalization.
import type { ModelConfig } from '../models/config.ts';
import { runtimeOf } from '../models/runtimes.ts';

import type { OnnxExportOptions } from './onnx-graph.ts';

export type { OnnxExportOptions };

/** ONNX model bytes for `config` with `params` (flat, paramLayout order). See the header for the graphs' I/O. */
export function exportOnnx(config: ModelConfig, params: Float32Array, opts: OnnxExportOptions = {}): Uint8Array {
  return runtimeOf(config).exportOnnx(config, params, { ...opts, producer: opts.producer ?? 'tabtrain' });
}
