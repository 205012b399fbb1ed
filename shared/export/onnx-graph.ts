// The ONNX graph builder and serializer the kinds' exporters share (shared/models/<kind>/onnx.ts); onnx.ts
// describes the graphs and picks the kind's exporter.
import { paramCount, views, type ModelConfig } from '../models/config.ts';
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
export class Graph {
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

export function serialize(g: Graph, name: string, inputs: Io[], outputs: Io[], producer: string): Uint8Array {
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

export function checkParams(config: ModelConfig, params: Float32Array): Record<string, Float32Array> {
  const need = paramCount(config);
  if (params.length !== need) throw new Error(`params: got ${params.length} values, the ${config.kind} config needs ${need}`);
  return views(config, params);
}

