// Export of a model zoo model with given parameters to an ONNX model (bytes), so onnxruntime-web can run
// a trained checkpoint ("try the model") and check our engine's forward pass independently.
//
// Graphs (opset 17, every op runs in onnxruntime-web's wasm backend):
//   mlp: input `x` float32 [batch, inputs]            → output `logits` float32 [batch, classes]
//   gpt: input `tokens` int64 [batch, seqLen]          → output `logits` float32 [batch, seqLen, vocab]
//        batch is dynamic; seqLen is fixed at export (option, default = context, 1 ≤ seqLen ≤ context),
//        which lets the causal mask and position rows be constants.
// GELU is written out with elementary ops (tanh form), LayerNorm is the opset-17 LayerNormalization.
import { paramCount, views, type GptConfig, type MlpConfig, type ModelConfig } from '../models/config.ts';
import { ProtoWriter } from './protobuf.ts';

export type OnnxExportOptions = { seqLen?: number; producer?: string };

const opset = 17;
const irVersion = 8;
const DT = { float: 1, int64: 7 } as const;

type Attr = { name: string; f?: number; i?: number; ints?: number[] };
type Node = { op: string; inputs: string[]; outputs: string[]; attrs?: Attr[] };
type Init = { name: string; dims: number[]; type: 'float' | 'int64'; data: Float32Array | BigInt64Array };
type Io = { name: string; type: 'float' | 'int64'; dims: (number | string)[] };

/** Collects nodes and initializers with unique names; one method per ONNX op we use. */
class Graph {
  nodes: Node[] = [];
  inits: Init[] = [];
  private n = 0;

  private tmp(prefix: string): string {
    return `${prefix}_${this.n++}`;
  }

  constF(name: string, dims: number[], data: Float32Array | number[]): string {
    this.inits.push({ name, dims, type: 'float', data: data instanceof Float32Array ? data : Float32Array.from(data) });
    return name;
  }

  constI(name: string, dims: number[], data: number[]): string {
    this.inits.push({ name, dims, type: 'int64', data: BigInt64Array.from(data.map(BigInt)) });
    return name;
  }

  op(op: string, inputs: string[], attrs?: Attr[], out?: string): string {
    const o = out ?? this.tmp(op.toLowerCase());
    this.nodes.push({ op, inputs, outputs: [o], attrs });
    return o;
  }

  matmul(a: string, b: string): string { return this.op('MatMul', [a, b]); }
  add(a: string, b: string, out?: string): string { return this.op('Add', [a, b], undefined, out); }
  mul(a: string, b: string): string { return this.op('Mul', [a, b]); }
}

function attrBytes(a: Attr): (w: ProtoWriter) => void {
  // AttributeProto: name 1, f 2, i 3, ints 8, type 20 (FLOAT 1, INT 2, INTS 7).
  return (w) => {
    w.string(1, a.name);
    if (a.f !== undefined) w.float(2, a.f).int(20, 1);
    else if (a.i !== undefined) w.int(3, a.i).int(20, 2);
    else if (a.ints) { for (const v of a.ints) w.int(8, v); w.int(20, 7); }
  };
}

function tensorBytes(t: Init): (w: ProtoWriter) => void {
  // TensorProto: dims 1, data_type 2, name 8, raw_data 9 (little-endian).
  return (w) => {
    for (const d of t.dims) w.int(1, d);
    w.int(2, DT[t.type]);
    w.string(8, t.name);
    const le = new Uint8Array(t.data.byteLength);
    const dv = new DataView(le.buffer);
    if (t.data instanceof Float32Array) t.data.forEach((v, i) => dv.setFloat32(i * 4, v, true));
    else t.data.forEach((v, i) => dv.setBigInt64(i * 8, v, true));
    w.bytes(9, le);
  };
}

function valueInfoBytes(v: Io): (w: ProtoWriter) => void {
  // ValueInfoProto: name 1, type 2 → TypeProto.tensor_type 1 → elem_type 1, shape 2 → dim 1 → dim_value 1 | dim_param 2.
  return (w) => {
    w.string(1, v.name);
    w.message(2, (tp) => tp.message(1, (tt) => {
      tt.int(1, DT[v.type]);
      tt.message(2, (shape) => {
        for (const d of v.dims) shape.message(1, (dim) => (typeof d === 'number' ? dim.int(1, d) : dim.string(2, d)));
      });
    }));
  };
}

function serialize(g: Graph, name: string, inputs: Io[], outputs: Io[], producer: string): Uint8Array {
  // ModelProto: ir_version 1, producer_name 2, graph 7, opset_import 8.
  // GraphProto: node 1, name 2, initializer 5, input 11, output 12.
  // NodeProto: input 1, output 2, name 3, op_type 4, attribute 5.
  const w = new ProtoWriter();
  w.int(1, irVersion).string(2, producer);
  w.message(7, (gw) => {
    g.nodes.forEach((node, k) => gw.message(1, (nw) => {
      for (const i of node.inputs) nw.string(1, i);
      for (const o of node.outputs) nw.string(2, o);
      nw.string(3, `${node.op}_${k}`).string(4, node.op);
      for (const a of node.attrs ?? []) nw.message(5, attrBytes(a));
    }));
    gw.string(2, name);
    for (const t of g.inits) gw.message(5, tensorBytes(t));
    for (const i of inputs) gw.message(11, valueInfoBytes(i));
    for (const o of outputs) gw.message(12, valueInfoBytes(o));
  });
  w.message(8, (ow) => ow.string(1, '').int(2, opset));
  return w.finish();
}

function checkParams(config: ModelConfig, params: Float32Array): Record<string, Float32Array> {
  const need = paramCount(config);
  if (params.length !== need) throw new Error(`params: got ${params.length} values, the ${config.kind} config needs ${need}`);
  return views(config, params);
}

function exportMlp(config: MlpConfig, params: Float32Array, producer: string): Uint8Array {
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

function exportGpt(config: GptConfig, params: Float32Array, seqLen: number, producer: string): Uint8Array {
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

/** ONNX model bytes for `config` with `params` (flat, paramLayout order). See the header for the graphs' I/O. */
export function exportOnnx(config: ModelConfig, params: Float32Array, opts: OnnxExportOptions = {}): Uint8Array {
  const producer = opts.producer ?? 'tabtrain';
  if (config.kind === 'mlp') return exportMlp(config, params, producer);
  if (config.kind === 'gpt') return exportGpt(config, params, opts.seqLen ?? config.context, producer);
  throw new Error(`exportOnnx: unknown model kind ${(config as { kind: string }).kind}; expected mlp or gpt`);
}
