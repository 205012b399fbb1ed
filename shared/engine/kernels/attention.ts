// Causal multi-head self-attention over a fused qkv [rows, 3w] (columns q | k | v, each split into
// `heads` slices of w/heads). Forward: one thread per (sequence, head, query) row: scaled scores over
// keys ≤ query, stable softmax saved as P [batch, heads, T, T], out = P·V. Backward in two passes, each
// thread owning what it writes (no atomics): per query row dS = P∘(dP − rowsum(P∘dP)) and dq; per key
// row dk = scale·dSᵀq and dv = Pᵀ·dout.
import { flatIndexWgsl, type Dispatch, type Gpu } from '../device.ts';
import { groups1d, packStruct, wg } from './pack.ts';

const head = /* wgsl */ `
struct Params { batch: u32, heads: u32, context: u32, width: u32, scale: f32, p0: u32, p1: u32, p2: u32 }
@group(0) @binding(0) var<uniform> p: Params;
${flatIndexWgsl}
// Element e of head h's q (part 0), k (1) or v (2) for row r = b·T + t.
fn qkvAt(r: u32, part: u32, h: u32, e: u32) -> u32 { return r * 3u * p.width + part * p.width + h * (p.width / p.heads) + e; }`;

export const attentionWgsl = /* wgsl */ `${head}
@group(0) @binding(1) var<storage, read> qkv: array<f32>;
@group(0) @binding(2) var<storage, read_write> P: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let idx = flatGroup(wid, nwg) * ${wg}u + li;
  let T = p.context;
  if (idx >= p.batch * p.heads * T) { return; }
  let i = idx % T;
  let h = (idx / T) % p.heads;
  let b = idx / (T * p.heads);
  let d = p.width / p.heads;
  let ri = b * T + i;
  let prow = idx * T;
  var mx = -3.0e38;
  for (var j = 0u; j <= i; j++) {
    var s = 0.0;
    for (var e = 0u; e < d; e++) { s += qkv[qkvAt(ri, 0u, h, e)] * qkv[qkvAt(b * T + j, 1u, h, e)]; }
    s *= p.scale;
    P[prow + j] = s;
    mx = max(mx, s);
  }
  var sum = 0.0;
  for (var j = 0u; j <= i; j++) { let z = exp(P[prow + j] - mx); P[prow + j] = z; sum += z; }
  let inv = 1.0 / sum;
  for (var j = 0u; j <= i; j++) { P[prow + j] *= inv; }
  for (var j = i + 1u; j < T; j++) { P[prow + j] = 0.0; }
  for (var e = 0u; e < d; e++) {
    var o = 0.0;
    for (var j = 0u; j <= i; j++) { o += P[prow + j] * qkv[qkvAt(b * T + j, 2u, h, e)]; }
    out[ri * p.width + h * d + e] = o;
  }
}`;

export const attentionBackQWgsl = /* wgsl */ `${head}
@group(0) @binding(1) var<storage, read> qkv: array<f32>;
@group(0) @binding(2) var<storage, read> P: array<f32>;
@group(0) @binding(3) var<storage, read> dout: array<f32>;
@group(0) @binding(4) var<storage, read_write> dS: array<f32>;
@group(0) @binding(5) var<storage, read_write> dqkv: array<f32>;
@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let idx = flatGroup(wid, nwg) * ${wg}u + li;
  let T = p.context;
  if (idx >= p.batch * p.heads * T) { return; }
  let i = idx % T;
  let h = (idx / T) % p.heads;
  let b = idx / (T * p.heads);
  let d = p.width / p.heads;
  let ri = b * T + i;
  let prow = idx * T;
  var dot = 0.0;
  for (var j = 0u; j <= i; j++) {
    var g = 0.0;
    for (var e = 0u; e < d; e++) { g += dout[ri * p.width + h * d + e] * qkv[qkvAt(b * T + j, 2u, h, e)]; }
    dS[prow + j] = g;
    dot += g * P[prow + j];
  }
  for (var j = 0u; j <= i; j++) { dS[prow + j] = P[prow + j] * (dS[prow + j] - dot); }
  for (var j = i + 1u; j < T; j++) { dS[prow + j] = 0.0; }
  for (var e = 0u; e < d; e++) {
    var g = 0.0;
    for (var j = 0u; j <= i; j++) { g += dS[prow + j] * qkv[qkvAt(b * T + j, 1u, h, e)]; }
    dqkv[qkvAt(ri, 0u, h, e)] = g * p.scale;
  }
}`;

export const attentionBackKvWgsl = /* wgsl */ `${head}
@group(0) @binding(1) var<storage, read> qkv: array<f32>;
@group(0) @binding(2) var<storage, read> P: array<f32>;
@group(0) @binding(3) var<storage, read> dout: array<f32>;
@group(0) @binding(4) var<storage, read> dS: array<f32>;
@group(0) @binding(5) var<storage, read_write> dqkv: array<f32>;
@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let idx = flatGroup(wid, nwg) * ${wg}u + li;
  let T = p.context;
  if (idx >= p.batch * p.heads * T) { return; }
  let j = idx % T;
  let h = (idx / T) % p.heads;
  let b = idx / (T * p.heads);
  let d = p.width / p.heads;
  let rj = b * T + j;
  let pbase = (idx - j) * T; // row 0 of this (b, h) block
  for (var e = 0u; e < d; e++) {
    var gk = 0.0;
    var gv = 0.0;
    for (var i = j; i < T; i++) {
      gk += dS[pbase + i * T + j] * qkv[qkvAt(b * T + i, 0u, h, e)];
      gv += P[pbase + i * T + j] * dout[(b * T + i) * p.width + h * d + e];
    }
    dqkv[qkvAt(rj, 1u, h, e)] = gk * p.scale;
    dqkv[qkvAt(rj, 2u, h, e)] = gv;
  }
}`;

export type AttentionDims = { batch: number; heads: number; context: number; width: number };

const pack = (a: AttentionDims) => packStruct([
  ['u32', a.batch], ['u32', a.heads], ['u32', a.context], ['u32', a.width],
  ['f32', 1 / Math.sqrt(a.width / a.heads)], ['u32', 0], ['u32', 0], ['u32', 0],
]);

function check(a: AttentionDims): void {
  if (a.width % a.heads !== 0) throw new Error(`attention: width ${a.width} must be a multiple of heads ${a.heads}`);
}

/** P must hold batch·heads·T·T floats. */
export async function attention(gpu: Gpu, a: AttentionDims & { qkv: GPUBuffer; P: GPUBuffer; out: GPUBuffer }, name = 'attention'): Promise<Dispatch> {
  check(a);
  const pipeline = await gpu.pipeline('attention', attentionWgsl);
  const u = gpu.uniform(pack(a), `${name}.params`);
  return gpu.dispatch(name, pipeline, [u, a.qkv, a.P, a.out], groups1d(a.batch * a.heads * a.context));
}

/** dS is scratch of P's size; dqkv [rows, 3w] is fully written. */
export async function attentionBack(
  gpu: Gpu, a: AttentionDims & { qkv: GPUBuffer; P: GPUBuffer; dout: GPUBuffer; dS: GPUBuffer; dqkv: GPUBuffer }, name = 'attentionBack',
): Promise<Dispatch[]> {
  check(a);
  const pq = await gpu.pipeline('attentionBackQ', attentionBackQWgsl);
  const pkv = await gpu.pipeline('attentionBackKv', attentionBackKvWgsl);
  const u = gpu.uniform(pack(a), `${name}.params`);
  const res = [u, a.qkv, a.P, a.dout, a.dS, a.dqkv];
  const groups = groups1d(a.batch * a.heads * a.context);
  return [gpu.dispatch(`${name}.q`, pq, res, groups), gpu.dispatch(`${name}.kv`, pkv, res, groups)];
}
