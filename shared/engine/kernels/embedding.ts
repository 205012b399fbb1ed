// Token + position embedding gather, and its deterministic scatter-add backward: each output row of
// dwte sums the positions holding that token (a CSR list built on the CPU with the batch, no atomics);
// each row of dwpe sums the batch at that position. The token table may come in row ranges held in
// different buffers (param-segments.ts: GPT-2's 50,257-row table is over a 128 MiB binding): one
// dispatch per range each way, the gather writing only the rows whose token falls in its range.
import { flatIndexWgsl, type Dispatch, type Gpu } from '../device.ts';
import type { RowRange } from '../param-buffers.ts';
import { groups1d, packStruct, wg } from './pack.ts';
import type { Ref } from './matmul.ts';

export const embedWgsl = /* wgsl */ `
struct Params { rows: u32, width: u32, context: u32, offIds: u32, offWte: u32, offWpe: u32, v0: u32, nv: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read> wte: array<f32>; // token rows [v0, v0 + nv) at offWte
@group(0) @binding(3) var<storage, read> wpe: array<f32>;
@group(0) @binding(4) var<storage, read_write> x: array<f32>;
${flatIndexWgsl}
@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = flatGroup(wid, nwg) * ${wg}u + li;
  if (i >= p.rows * p.width) { return; }
  let r = i / p.width;
  let j = i % p.width;
  let tok = ids[p.offIds + r];
  if (tok < p.v0 || tok - p.v0 >= p.nv) { return; } // another range's dispatch writes this row
  x[i] = wte[p.offWte + (tok - p.v0) * p.width + j] + wpe[p.offWpe + (r % p.context) * p.width + j];
}`;

export const embedBackTokensWgsl = /* wgsl */ `
struct Params { v0: u32, nv: u32, width: u32, offCsrStart: u32, offCsrPos: u32, offDwte: u32, p0: u32, p1: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> ints: array<u32>;
@group(0) @binding(2) var<storage, read> dx: array<f32>;
@group(0) @binding(3) var<storage, read_write> grad: array<f32>; // dwte rows [v0, v0 + nv) at offDwte
${flatIndexWgsl}
@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = flatGroup(wid, nwg) * ${wg}u + li;
  if (i >= p.nv * p.width) { return; }
  let v = p.v0 + i / p.width;
  let j = i % p.width;
  var s = 0.0;
  let end = ints[p.offCsrStart + v + 1u];
  for (var q = ints[p.offCsrStart + v]; q < end; q++) { s += dx[ints[p.offCsrPos + q] * p.width + j]; }
  grad[p.offDwte + i] = s;
}`;

export const embedBackPositionsWgsl = /* wgsl */ `
struct Params { context: u32, width: u32, batch: u32, offDwpe: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dx: array<f32>;
@group(0) @binding(2) var<storage, read_write> grad: array<f32>;
${flatIndexWgsl}
@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let k = flatGroup(wid, nwg) * ${wg}u + li;
  if (k >= p.context * p.width) { return; }
  let t = k / p.width;
  let j = k % p.width;
  var s = 0.0;
  for (var b = 0u; b < p.batch; b++) { s += dx[(b * p.context + t) * p.width + j]; }
  grad[p.offDwpe + k] = s;
}`;

/** wte: the token table's row ranges (one when it is whole); together they must cover every token id. */
export type EmbedArgs = { ids: Ref; wte: RowRange[]; wpe: Ref; x: GPUBuffer; rows: number; width: number; context: number };

/** x = wte[ids] + wpe[position]: one dispatch per row range of wte. */
export async function embed(gpu: Gpu, a: EmbedArgs, name = 'embed'): Promise<Dispatch[]> {
  const pipeline = await gpu.pipeline('embed', embedWgsl);
  return a.wte.map((t, k) => {
    const u = gpu.uniform(packStruct([
      ['u32', a.rows], ['u32', a.width], ['u32', a.context], ['u32', a.ids.off], ['u32', t.ref.off], ['u32', a.wpe.off], ['u32', t.row0], ['u32', t.rows],
    ]), `${name}.params`);
    return gpu.dispatch(a.wte.length > 1 ? `${name}.${k}` : name, pipeline, [u, a.ids.buf, t.ref.buf, a.wpe.buf, a.x], groups1d(a.rows * a.width));
  });
}

export type EmbedBackArgs = {
  ints: GPUBuffer; offCsrStart: number; offCsrPos: number; dx: GPUBuffer;
  /** dwte's row ranges (as embed's wte) and dwpe. */
  dwte: RowRange[]; dwpe: Ref; width: number; context: number; batch: number;
};

/** dwte (one dispatch per row range) and dwpe, each row a fixed-order sum. */
export async function embedBack(gpu: Gpu, a: EmbedBackArgs, name = 'embedBack'): Promise<Dispatch[]> {
  const tokens = await gpu.pipeline('embedBackTokens', embedBackTokensWgsl);
  const positions = await gpu.pipeline('embedBackPositions', embedBackPositionsWgsl);
  const out = a.dwte.map((t, k) => {
    const u = gpu.uniform(packStruct([
      ['u32', t.row0], ['u32', t.rows], ['u32', a.width], ['u32', a.offCsrStart], ['u32', a.offCsrPos], ['u32', t.ref.off], ['u32', 0], ['u32', 0],
    ]), `${name}.wte.params`);
    return gpu.dispatch(a.dwte.length > 1 ? `${name}.wte.${k}` : `${name}.wte`, tokens, [u, a.ints, a.dx, t.ref.buf], groups1d(t.rows * a.width));
  });
  const u = gpu.uniform(packStruct([['u32', a.context], ['u32', a.width], ['u32', a.batch], ['u32', a.dwpe.off]]), `${name}.wpe.params`);
  out.push(gpu.dispatch(`${name}.wpe`, positions, [u, a.dx, a.dwpe.buf], groups1d(a.context * a.width)));
  return out;
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
