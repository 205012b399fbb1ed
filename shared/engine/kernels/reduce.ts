// Deterministic reductions (fixed order, no float atomics): column sums for bias gradients, the global
// sum of squares for gradient clipping (two passes: fixed partials, then one workgroup), and the mean
// of per-row losses into the step's loss slot. Where the device has `subgroups` (gpu.policy), the
// sum of squares reads coalesced and combines each subgroup's partials with subgroupAdd.
import { flatIndexWgsl, type Dispatch, type Gpu } from '../device.ts';
import { groups1d, packStruct, wg } from './pack.ts';
import type { Ref } from './matmul.ts';

export const colsumWgsl = /* wgsl */ `
struct Params { rows: u32, cols: u32, offX: u32, offOut: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
${flatIndexWgsl}
@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let j = flatGroup(wid, nwg) * ${wg}u + li;
  if (j >= p.cols) { return; }
  var s = 0.0;
  for (var r = 0u; r < p.rows; r++) { s += x[p.offX + r * p.cols + j]; }
  out[p.offOut + j] = s;
}`;

/** out[j] = Σ_r x[r, j] (bias gradient). */
export async function colsum(gpu: Gpu, x: Ref, rows: number, cols: number, out: Ref, name = 'colsum'): Promise<Dispatch> {
  const pipeline = await gpu.pipeline('colsum', colsumWgsl);
  const u = gpu.uniform(packStruct([['u32', rows], ['u32', cols], ['u32', x.off], ['u32', out.off]]), `${name}.params`);
  return gpu.dispatch(name, pipeline, [u, x.buf, out.buf], groups1d(cols));
}

/** Partial sums of squares: one per thread, each over a contiguous chunk. No workgroup barriers: on
 * SwiftShader a barrier is a coroutine switch per invocation, which made a shared-memory tree ~100× slower. */
export const sumsqPartials = 1024;

export const sumsqWgsl = /* wgsl */ `
struct Params { n: u32, offOut: u32, p1: u32, p2: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> partial: array<f32>;
@compute @workgroup_size(${wg})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let chunk = (p.n + ${sumsqPartials - 1}u) / ${sumsqPartials}u;
  let start = gid.x * chunk;
  let end = min(start + chunk, p.n);
  var s = 0.0;
  for (var i = start; i < end; i++) { let v = x[i]; s += v * v; }
  partial[p.offOut + gid.x] = s;
}`;

/** Subgroup variant of sumsq: thread t reads t, t + T, t + 2T … (T = sumsqPartials threads), so a
 * subgroup's loads are contiguous; subgroupAdd then sums the subgroup's values and its first lane
 * stores them, the others store 0, so the final pass below is unchanged (and exact about the zeros).
 * The loop bound is uniform (subgroupAdd needs uniform control flow). */
export const sumsqSubgroupWgsl = /* wgsl */ `
enable subgroups;
struct Params { n: u32, offOut: u32, p1: u32, p2: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> partial: array<f32>;
@compute @workgroup_size(${wg})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(subgroup_invocation_id) lane: u32) {
  let rounds = (p.n + ${sumsqPartials - 1}u) / ${sumsqPartials}u;
  var s = 0.0;
  for (var j = 0u; j < rounds; j++) {
    let i = j * ${sumsqPartials}u + gid.x;
    let v = select(0.0, x[min(i, p.n - 1u)], i < p.n);
    s += v * v;
  }
  let total = subgroupAdd(s);
  partial[p.offOut + gid.x] = select(0.0, total, lane == 0u);
}`;

export const sumFinalWgsl = /* wgsl */ `
// One thread sums n values in order; MODE 0 writes sqrt(sum) to out[0] (the norm),
// MODE 1 writes sum / n to out[s.slot] (the mean loss of this step).
struct Params { n: u32, p0: u32, p1: u32, p2: u32 }
struct Step { slot: u32, bc1: f32, bc2: f32, p0: u32 }
override MODE: u32 = 0u;
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<uniform> s: Step;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(1)
fn main() {
  var acc = 0.0;
  for (var i = 0u; i < p.n; i++) { acc += x[i]; }
  if (MODE == 0u) { out[0] = sqrt(acc); } else { out[s.slot] = acc / f32(p.n); }
}`;

/** A vector held in several buffers (param-buffers.ts segments): the first n floats of each, in order. */
export type Parts = { buf: GPUBuffer; n: number }[];

/** norm[0] = ‖x‖₂ over every part, in one dispatch per part plus one: each part's sumsqPartials
 * partial sums land side by side in `partial` (sumsqPartials × parts floats), then one thread sums them
 * in order. The first pass uses subgroupAdd when gpu.policy.subgroups (or `subgroups` here) says so. */
export async function globalNorm(
  gpu: Gpu, x: Parts, partial: GPUBuffer, step: GPUBuffer, norm: GPUBuffer, subgroups = gpu.policy.subgroups,
): Promise<Dispatch[]> {
  if (subgroups && !gpu.dev.features.subgroups) throw new Error("globalNorm: subgroups requested but the device has no 'subgroups' feature");
  const p1 = subgroups ? await gpu.pipeline('sumsqSubgroup', sumsqSubgroupWgsl) : await gpu.pipeline('sumsq', sumsqWgsl);
  const p2 = await gpu.pipeline('sumFinal', sumFinalWgsl, { MODE: 0 });
  const out = x.map((part, k) => {
    const u = gpu.uniform(packStruct([['u32', part.n], ['u32', k * sumsqPartials]]), 'sumsq.params');
    return gpu.dispatch(x.length > 1 ? `sumsq.${k}` : 'sumsq', p1, [u, part.buf, partial], sumsqPartials / wg);
  });
  const u2 = gpu.uniform(packStruct([['u32', sumsqPartials * x.length]]), 'norm.params');
  out.push(gpu.dispatch('norm', p2, [u2, step, partial, norm], [1, 1]));
  return out;
}

/** losses[step.slot] = mean of rowLoss[0..rows). */
export async function meanLoss(gpu: Gpu, rowLoss: GPUBuffer, rows: number, step: GPUBuffer, losses: GPUBuffer): Promise<Dispatch> {
  const pipeline = await gpu.pipeline('sumFinal', sumFinalWgsl, { MODE: 1 });
  const u = gpu.uniform(packStruct([['u32', rows]]), 'loss.params');
  return gpu.dispatch('meanLoss', pipeline, [u, step, rowLoss, losses], [1, 1]);
}
