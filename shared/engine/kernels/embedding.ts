// Token + position embedding gather, and its deterministic scatter-add backward: each output row of
// dwte sums the positions holding that token (a CSR list built on the CPU with the batch, no atomics);
// each row of dwpe sums the batch at that position. One dispatch each way.
import { flatIndexWgsl, type Dispatch, type Gpu } from '../device.ts';
import { groups1d, packStruct, wg } from './pack.ts';
import type { Ref } from './matmul.ts';

export const embedWgsl = /* wgsl */ `
struct Params { rows: u32, width: u32, context: u32, offIds: u32, offWte: u32, offWpe: u32, p0: u32, p1: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read> params: array<f32>;
@group(0) @binding(3) var<storage, read_write> x: array<f32>;
${flatIndexWgsl}
@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = flatGroup(wid, nwg) * ${wg}u + li;
  if (i >= p.rows * p.width) { return; }
  let r = i / p.width;
  let j = i % p.width;
  let tok = ids[p.offIds + r];
  x[i] = params[p.offWte + tok * p.width + j] + params[p.offWpe + (r % p.context) * p.width + j];
}`;

export const embedBackWgsl = /* wgsl */ `
struct Params { vocab: u32, width: u32, context: u32, batch: u32, offCsrStart: u32, offCsrPos: u32, offDwte: u32, offDwpe: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> ints: array<u32>;
@group(0) @binding(2) var<storage, read> dx: array<f32>;
@group(0) @binding(3) var<storage, read_write> grad: array<f32>;
${flatIndexWgsl}
@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = flatGroup(wid, nwg) * ${wg}u + li;
  let nte = p.vocab * p.width;
  if (i < nte) {
    let v = i / p.width;
    let j = i % p.width;
    var s = 0.0;
    let end = ints[p.offCsrStart + v + 1u];
    for (var q = ints[p.offCsrStart + v]; q < end; q++) { s += dx[ints[p.offCsrPos + q] * p.width + j]; }
    grad[p.offDwte + i] = s;
    return;
  }
  let k = i - nte;
  if (k >= p.context * p.width) { return; }
  let t = k / p.width;
  let j = k % p.width;
  var s = 0.0;
  for (var b = 0u; b < p.batch; b++) { s += dx[(b * p.context + t) * p.width + j]; }
  grad[p.offDwpe + k] = s;
}`;

export type EmbedArgs = { ids: Ref; params: GPUBuffer; offWte: number; offWpe: number; x: GPUBuffer; rows: number; width: number; context: number };

export async function embed(gpu: Gpu, a: EmbedArgs): Promise<Dispatch> {
  const pipeline = await gpu.pipeline('embed', embedWgsl);
  const u = gpu.uniform(packStruct([['u32', a.rows], ['u32', a.width], ['u32', a.context], ['u32', a.ids.off], ['u32', a.offWte], ['u32', a.offWpe], ['u32', 0], ['u32', 0]]), 'embed.params');
  return gpu.dispatch('embed', pipeline, [u, a.ids.buf, a.params, a.x], groups1d(a.rows * a.width));
}

export type EmbedBackArgs = {
  ints: GPUBuffer; offCsrStart: number; offCsrPos: number; dx: GPUBuffer; grad: GPUBuffer; offDwte: number; offDwpe: number;
  vocab: number; width: number; context: number; batch: number;
};

export async function embedBack(gpu: Gpu, a: EmbedBackArgs): Promise<Dispatch> {
  const pipeline = await gpu.pipeline('embedBack', embedBackWgsl);
  const u = gpu.uniform(packStruct([
    ['u32', a.vocab], ['u32', a.width], ['u32', a.context], ['u32', a.batch],
    ['u32', a.offCsrStart], ['u32', a.offCsrPos], ['u32', a.offDwte], ['u32', a.offDwpe],
  ]), 'embedBack.params');
  return gpu.dispatch('embedBack', pipeline, [u, a.ints, a.dx, a.grad], groups1d((a.vocab + a.context) * a.width));
}

/** Positions grouped by token id (CSR): start [vocab+1], pos [rows]. Built on the CPU per batch. */
export function tokenCsr(ids: ArrayLike<number>, vocab: number): { start: Uint32Array; pos: Uint32Array } {
  const start = new Uint32Array(vocab + 1);
  for (let i = 0; i < ids.length; i++) start[ids[i] + 1]++;
  for (let v = 0; v < vocab; v++) start[v + 1] += start[v];
  const fill = start.slice(0, vocab);
  const pos = new Uint32Array(ids.length);
  for (let i = 0; i < ids.length; i++) pos[fill[ids[i]]++] = i;
  return { start, pos };
}
