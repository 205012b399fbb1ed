// The GPT as an ONNX graph: input `tokens` int64 [batch, seqLen] → output `logits` float32 [batch, seqLen, vocab].
import { checkParams, Graph, serialize } from '../../export/onnx-graph.ts';
import type { GptConfig } from './config.ts';

export function exportGpt(config: GptConfig, params: Float32Array, seqLen: number, producer: string): Uint8Array {
  const { vocab, context, layers, heads, width: w } = config;
  if (!Number.isInteger(seqLen) || seqLen < 1 || seqLen > context) {
    throw new Error(`seqLen must be an integer in [1, context=${context}], got ${seqLen}`);
  }
  if (w % heads !== 0) throw new Error(`gpt config: width (${w}) must be a multiple of heads (${heads})`);
  const v = checkParams(config, params);
  const T = seqLen, hd = w / heads;
  const g = new Graph();
  const p = (name: string, dims: number[]) => g.constF(name, dims, v[name]);

  // Constants shared by every block.
  const mask = new Float32Array(T * T);
  for (let i = 0; i < T; i++) for (let j = i + 1; j < T; j++) mask[i * T + j] = -1e9;
  const causal = g.constF('causal_mask', [T, T], mask);
  const scale = g.constF('attn_scale', [], [1 / Math.sqrt(hd)]);
  const toHeads = g.constI('shape_qkv', [5], [0, T, 3, heads, hd]); // 0 = keep the batch dim
  const toRows = g.constI('shape_rows', [3], [0, T, w]);
  const idx = [0, 1, 2].map((k) => g.constI(`index_${k}`, [], [k]));
  const half = g.constF('half', [], [0.5]), one = g.constF('one', [], [1]);
  const geluA = g.constF('gelu_a', [], [0.044715]), geluC = g.constF('gelu_c', [], [Math.sqrt(2 / Math.PI)]);
  const layerNorm = (x: string, name: string) => g.op('LayerNormalization', [x, p(`${name}.g`, [w]), p(`${name}.b`, [w])],
    [{ name: 'axis', i: -1 }, { name: 'epsilon', f: 1e-5 }]);
  const gelu = (x: string) => {
    const x3 = g.mul(g.mul(x, x), x);
    const t = g.op('Tanh', [g.mul(geluC, g.add(x, g.mul(geluA, x3)))]);
    return g.mul(g.mul(half, x), g.add(one, t));
  };

  // x = wte[tokens] + wpe[0..T)
  const wpe = g.constF('wpe', [T, w], v['wpe'].subarray(0, T * w));
  let x = g.add(g.op('Gather', [p('wte', [vocab, w]), 'tokens'], [{ name: 'axis', i: 0 }]), wpe);
  for (let l = 0; l < layers; l++) {
    const h = `h${l}`;
    // Attention: qkv [B,T,3w] → [3,B,H,T,hd] → q, k, v [B,H,T,hd].
    const qkv = g.add(g.matmul(layerNorm(x, `${h}.ln1`), p(`${h}.attn.wqkv`, [w, 3 * w])), p(`${h}.attn.bqkv`, [3 * w]));
    const split = g.op('Transpose', [g.op('Reshape', [qkv, toHeads])], [{ name: 'perm', ints: [2, 0, 3, 1, 4] }]);
    const [q, k, val] = idx.map((i) => g.op('Gather', [split, i], [{ name: 'axis', i: 0 }]));
    const kt = g.op('Transpose', [k], [{ name: 'perm', ints: [0, 1, 3, 2] }]);
    const scores = g.add(g.mul(g.matmul(q, kt), scale), causal);
    const probs = g.op('Softmax', [scores], [{ name: 'axis', i: -1 }]);
    const heads4 = g.op('Transpose', [g.matmul(probs, val)], [{ name: 'perm', ints: [0, 2, 1, 3] }]);
    const att = g.op('Reshape', [heads4, toRows]);
    x = g.add(x, g.add(g.matmul(att, p(`${h}.attn.wo`, [w, w])), p(`${h}.attn.bo`, [w])));
    // MLP
    const hid = gelu(g.add(g.matmul(layerNorm(x, `${h}.ln2`), p(`${h}.mlp.w1`, [w, 4 * w])), p(`${h}.mlp.b1`, [4 * w])));
    x = g.add(x, g.add(g.matmul(hid, p(`${h}.mlp.w2`, [4 * w, w])), p(`${h}.mlp.b2`, [w])));
  }
  g.op('MatMul', [layerNorm(x, 'lnf'), p('head.w', [w, vocab])], undefined, 'logits');
  return serialize(g, 'tabtrain-gpt', [{ name: 'tokens', type: 'int64', dims: ['batch', T] }],
    [{ name: 'logits', type: 'float', dims: ['batch', T, vocab] }], producer);
}
