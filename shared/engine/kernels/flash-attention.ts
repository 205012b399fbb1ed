// Causal multi-head self-attention that never stores the T×T scores (the FlashAttention idea, without
// its tiling): the forward pass keeps, per query row, a running max and sum (online softmax) and saves
// only the row's log-sum-exp L; backward recomputes each probability as exp(s − L). Memory per layer is
// O(rows) instead of O(batch·heads·T²), which is what lets context 1024 fit. Same qkv layout and results
// as attention.ts. One thread per (sequence, head, row), each owning what it writes (no atomics):
//   forward:  per query row i, out_i = Σ_j softmax(s_i)_j v_j and L_i = log Σ_j exp(s_ij)
//   back, Q:  per query row i, D_i = dout_i·out_i, dq_i = scale Σ_j P_ij (dout_i·v_j − D_i) k_j
//   back, KV: per key row j, dv_j = Σ_{i≥j} P_ij dout_i, dk_j = scale Σ_{i≥j} P_ij (dout_i·v_j − D_i) q_i
// The head size is baked into the source (per-thread arrays need a constant length).
import { flatIndexWgsl, type Dispatch, type Gpu } from '../device.ts';
import { groups1d, packStruct, wg } from './pack.ts';
import type { AttentionDims } from './attention.ts';
import { maxHeadSize } from '../memory-plan.ts';

export { maxHeadSize };

const head = (d: number) => /* wgsl */ `
struct Params { batch: u32, heads: u32, context: u32, width: u32, scale: f32, p0: u32, p1: u32, p2: u32 }
@group(0) @binding(0) var<uniform> p: Params;
${flatIndexWgsl}
const D: u32 = ${d}u;
fn qkvAt(r: u32, part: u32, h: u32, e: u32) -> u32 { return r * 3u * p.width + part * p.width + h * D + e; }`;

const entry = /* wgsl */ `@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let idx = flatGroup(wid, nwg) * ${wg}u + li;
  let T = p.context;
  if (idx >= p.batch * p.heads * T) { return; }
  let me = idx % T;
  let h = (idx / T) % p.heads;
  let b = idx / (T * p.heads);`;

export const flashForwardWgsl = (d: number) => /* wgsl */ `${head(d)}
@group(0) @binding(1) var<storage, read> qkv: array<f32>;
@group(0) @binding(2) var<storage, read_write> lse: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
${entry}
  let ri = b * T + me;
  var q: array<f32, D>;
  var o: array<f32, D>;
  for (var e = 0u; e < D; e++) { q[e] = qkv[qkvAt(ri, 0u, h, e)] * p.scale; }
  var m = -3.0e38;
  var l = 0.0;
  for (var j = 0u; j <= me; j++) {
    let rj = b * T + j;
    var s = 0.0;
    for (var e = 0u; e < D; e++) { s += q[e] * qkv[qkvAt(rj, 1u, h, e)]; }
    let mNew = max(m, s);
    let corr = exp(m - mNew);
    let pj = exp(s - mNew);
    l = l * corr + pj;
    for (var e = 0u; e < D; e++) { o[e] = o[e] * corr + pj * qkv[qkvAt(rj, 2u, h, e)]; }
    m = mNew;
  }
  let inv = 1.0 / l;
  for (var e = 0u; e < D; e++) { out[ri * p.width + h * D + e] = o[e] * inv; }
  lse[idx] = m + log(l);
}`;

export const flashBackQWgsl = (d: number) => /* wgsl */ `${head(d)}
@group(0) @binding(1) var<storage, read> qkv: array<f32>;
@group(0) @binding(2) var<storage, read> out: array<f32>;
@group(0) @binding(3) var<storage, read> dout: array<f32>;
@group(0) @binding(4) var<storage, read> lse: array<f32>;
@group(0) @binding(5) var<storage, read_write> rowDot: array<f32>;
@group(0) @binding(6) var<storage, read_write> dqkv: array<f32>;
${entry}
  let ri = b * T + me;
  var q: array<f32, D>;
  var dO: array<f32, D>;
  var dq: array<f32, D>;
  var dd = 0.0;
  for (var e = 0u; e < D; e++) {
    q[e] = qkv[qkvAt(ri, 0u, h, e)];
    dO[e] = dout[ri * p.width + h * D + e];
    dd += dO[e] * out[ri * p.width + h * D + e];
  }
  rowDot[idx] = dd;
  let L = lse[idx];
  for (var j = 0u; j <= me; j++) {
    let rj = b * T + j;
    var s = 0.0;
    var dp = 0.0;
    for (var e = 0u; e < D; e++) {
      s += q[e] * qkv[qkvAt(rj, 1u, h, e)];
      dp += dO[e] * qkv[qkvAt(rj, 2u, h, e)];
    }
    let ds = exp(s * p.scale - L) * (dp - dd);
    for (var e = 0u; e < D; e++) { dq[e] += ds * qkv[qkvAt(rj, 1u, h, e)]; }
  }
  for (var e = 0u; e < D; e++) { dqkv[qkvAt(ri, 0u, h, e)] = dq[e] * p.scale; }
}`;

export const flashBackKvWgsl = (d: number) => /* wgsl */ `${head(d)}
@group(0) @binding(1) var<storage, read> qkv: array<f32>;
@group(0) @binding(2) var<storage, read> dout: array<f32>;
@group(0) @binding(3) var<storage, read> lse: array<f32>;
@group(0) @binding(4) var<storage, read> rowDot: array<f32>;
@group(0) @binding(5) var<storage, read_write> dqkv: array<f32>;
${entry}
  let rj = b * T + me;
  let row0 = idx - me; // (b, h, query 0) in lse and rowDot
  var k: array<f32, D>;
  var v: array<f32, D>;
  var dk: array<f32, D>;
  var dv: array<f32, D>;
  for (var e = 0u; e < D; e++) { k[e] = qkv[qkvAt(rj, 1u, h, e)]; v[e] = qkv[qkvAt(rj, 2u, h, e)]; }
  for (var i = me; i < T; i++) {
    let ri = b * T + i;
    var s = 0.0;
    var dp = 0.0;
    for (var e = 0u; e < D; e++) {
      s += qkv[qkvAt(ri, 0u, h, e)] * k[e];
      dp += dout[ri * p.width + h * D + e] * v[e];
    }
    let pij = exp(s * p.scale - lse[row0 + i]);
    let ds = pij * (dp - rowDot[row0 + i]);
    for (var e = 0u; e < D; e++) {
      dv[e] += pij * dout[ri * p.width + h * D + e];
      dk[e] += ds * qkv[qkvAt(ri, 0u, h, e)];
    }
  }
  for (var e = 0u; e < D; e++) {
    dqkv[qkvAt(rj, 1u, h, e)] = dk[e] * p.scale;
    dqkv[qkvAt(rj, 2u, h, e)] = dv[e];
  }
}`;

const pack = (a: AttentionDims) => packStruct([
  ['u32', a.batch], ['u32', a.heads], ['u32', a.context], ['u32', a.width],
  ['f32', 1 / Math.sqrt(a.width / a.heads)], ['u32', 0], ['u32', 0], ['u32', 0],
]);

function headSize(a: AttentionDims): number {
  if (a.width % a.heads !== 0) throw new Error(`attention: width ${a.width} must be a multiple of heads ${a.heads}`);
  const d = a.width / a.heads;
  if (d > maxHeadSize) throw new Error(`attention: head size width/heads = ${d} is over the ${maxHeadSize} the kernels hold per thread; use more heads`);
  return d;
}

/** Floats of the per-row statistics (lse, and rowDot in backward): batch·heads·T each. */
export const rowStatFloats = (a: AttentionDims): number => a.batch * a.heads * a.context;

/** out [rows, w] and lse [batch·heads·T] are fully written. */
export async function flashAttention(gpu: Gpu, a: AttentionDims & { qkv: GPUBuffer; lse: GPUBuffer; out: GPUBuffer }, name = 'flashAttention'): Promise<Dispatch> {
  const d = headSize(a);
  const pipeline = await gpu.pipeline(`flashAttention.d${d}`, flashForwardWgsl(d));
  const u = gpu.uniform(pack(a), `${name}.params`);
  return gpu.dispatch(name, pipeline, [u, a.qkv, a.lse, a.out], groups1d(rowStatFloats(a)));
}

/** rowDot is scratch of lse's size; dqkv [rows, 3w] is fully written. */
export async function flashAttentionBack(
  gpu: Gpu, a: AttentionDims & { qkv: GPUBuffer; out: GPUBuffer; lse: GPUBuffer; dout: GPUBuffer; rowDot: GPUBuffer; dqkv: GPUBuffer }, name = 'flashAttentionBack',
): Promise<Dispatch[]> {
  const d = headSize(a);
  const pq = await gpu.pipeline(`flashBackQ.d${d}`, flashBackQWgsl(d));
  const pkv = await gpu.pipeline(`flashBackKv.d${d}`, flashBackKvWgsl(d));
  const u = gpu.uniform(pack(a), `${name}.params`);
  const groups = groups1d(rowStatFloats(a));
  return [
    gpu.dispatch(`${name}.q`, pq, [u, a.qkv, a.out, a.dout, a.lse, a.rowDot, a.dqkv], groups),
    gpu.dispatch(`${name}.kv`, pkv, [u, a.qkv, a.dout, a.lse, a.rowDot, a.dqkv], groups),
  ];
}
