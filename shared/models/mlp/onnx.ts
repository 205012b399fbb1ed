// The MLP as an ONNX graph: input `x` float32 [batch, inputs] → output `logits` float32 [batch, classes].
import { checkParams, Graph, serialize } from '../../export/onnx-graph.ts';
import type { MlpConfig } from './config.ts';

export function exportMlp(config: MlpConfig, params: Float32Array, producer: string): Uint8Array {
  const v = checkParams(config, params);
  const g = new Graph();
  const dims = [config.inputs, ...config.hidden, config.classes];
  let x = 'x';
  for (let i = 0; i + 1 < dims.length; i++) {
    const w = g.constF(`l${i}.w`, [dims[i], dims[i + 1]], v[`l${i}.w`]);
    const b = g.constF(`l${i}.b`, [dims[i + 1]], v[`l${i}.b`]);
    const last = i + 2 === dims.length;
    x = g.add(g.matmul(x, w), b, last ? 'logits' : undefined);
    if (!last) x = g.op('Relu', [x]);
  }
  return serialize(g, 'tabtrain-mlp', [{ name: 'x', type: 'float', dims: ['batch', config.inputs] }],
    [{ name: 'logits', type: 'float', dims: ['batch', config.classes] }], producer);
}
