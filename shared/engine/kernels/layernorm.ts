// Layer norm (eps 1e-5, biased variance): forward per row saving mean and 1/std; backward per row
// (dx, added to the incoming residual gradient) and per column (dγ, dβ), all deterministic.
import { flatIndexWgsl, type Dispatch, type Gpu } from '../device.ts';
import { groups1d, packStruct, wg } from './pack.ts';
import type { Ref } from './matmul.ts';

const head = /* wgsl */ `
struct Params { rows: u32, width: u32, offG: u32, offB: u32 }
@group(0) @binding(0) var<uniform> p: Params;
${flatIndexWgsl}`;

export const layerNormWgsl = /* wgsl */ `${head}
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> params: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read_write> stats: array<f32>; // [rows][mean, rstd]
@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let r = flatGroup(wid, nwg) * ${wg}u + li;
  if (r >= p.rows) { return; }
  let o = r * p.width;
  var mean = 0.0;
  for (var j = 0u; j < p.width; j++) { mean += x[o + j]; }
  mean /= f32(p.width);
  var vr = 0.0;
  for (var j = 0u; j < p.width; j++) { let d = x[o + j] - mean; vr += d * d; }
  let rstd = inverseSqrt(vr / f32(p.width) + 1e-5);
  for (var j = 0u; j < p.width; j++) { y[o + j] = (x[o + j] - mean) * rstd * params[p.offG + j] + params[p.offB + j]; }
  stats[2u * r] = mean;
  stats[2u * r + 1u] = rstd;
}`;

export const layerNormBackWgsl = /* wgsl */ `${head}
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> params: array<f32>;
@group(0) @binding(3) var<storage, read> dy: array<f32>;
@group(0) @binding(4) var<storage, read> stats: array<f32>;
@group(0) @binding(5) var<storage, read> resid: array<f32>; // gradient arriving through the skip path
@group(0) @binding(6) var<storage, read_write> dx: array<f32>;
override RESID: bool = true;
@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let r = flatGroup(wid, nwg) * ${wg}u + li;
  if (r >= p.rows) { return; }
  let o = r * p.width;
  let mean = stats[2u * r];
  let rstd = stats[2u * r + 1u];
  // dx = rstd · (dx̂ − mean(dx̂) − x̂ · mean(dx̂ · x̂)), dx̂ = dy · γ
  var m1 = 0.0;
  var m2 = 0.0;
  for (var j = 0u; j < p.width; j++) {
    let dh = dy[o + j] * params[p.offG + j];
    m1 += dh;
    m2 += dh * (x[o + j] - mean) * rstd;
  }
  m1 /= f32(p.width);
  m2 /= f32(p.width);
  for (var j = 0u; j < p.width; j++) {
    let xh = (x[o + j] - mean) * rstd;
    var g = rstd * (dy[o + j] * params[p.offG + j] - m1 - xh * m2);
    if (RESID) { g += resid[o + j]; }
    dx[o + j] = g;
  }
}`;

export const layerNormParamGradWgsl = /* wgsl */ `${head}
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read> stats: array<f32>;
@group(0) @binding(4) var<storage, read_write> grad: array<f32>; // dγ at offG, dβ at offB
@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let j = flatGroup(wid, nwg) * ${wg}u + li;
  if (j >= p.width) { return; }
  var dg = 0.0;
  var db = 0.0;
  for (var r = 0u; r < p.rows; r++) {
    let d = dy[r * p.width + j];
    dg += d * (x[r * p.width + j] - stats[2u * r]) * stats[2u * r + 1u];
    db += d;
  }
  grad[p.offG + j] = dg;
  grad[p.offB + j] = db;
}`;

/** γ and β of one layer norm: one module, so one buffer (param-segments.ts keeps them together). */
function pair(g: Ref, b: Ref, what: string): GPUBuffer {
  if (g.buf !== b.buf) throw new Error(`${what}: γ and β must be in one buffer (one binding), got two`);
  return g.buf;
}

export type LayerNormArgs = { x: GPUBuffer; g: Ref; b: Ref; y: GPUBuffer; stats: GPUBuffer; rows: number; width: number };

const pack = (rows: number, width: number, offG: number, offB: number) =>
  packStruct([['u32', rows], ['u32', width], ['u32', offG], ['u32', offB]]);

export async function layerNorm(gpu: Gpu, a: LayerNormArgs, name = 'layerNorm'): Promise<Dispatch> {
  const pipeline = await gpu.pipeline('layerNorm', layerNormWgsl);
  const u = gpu.uniform(pack(a.rows, a.width, a.g.off, a.b.off), `${name}.params`);
  return gpu.dispatch(name, pipeline, [u, a.x, pair(a.g, a.b, name), a.y, a.stats], groups1d(a.rows));
}

export type LayerNormBackArgs = {
  x: GPUBuffer; g: Ref; b: Ref; dy: GPUBuffer; stats: GPUBuffer;
  /** Adds this gradient (the residual path) into dx; omit for none. */
  resid?: GPUBuffer; dx: GPUBuffer;
  /** Where dγ and dβ go (one buffer, like γ and β). */
  dg: Ref; db: Ref; rows: number; width: number;
};

/** Two dispatches: dx per row, then dγ/dβ per column into the gradient buffer. */
export async function layerNormBack(gpu: Gpu, a: LayerNormBackArgs, name = 'layerNormBack'): Promise<Dispatch[]> {
  const p1 = await gpu.pipeline('layerNormBack', layerNormBackWgsl, { RESID: a.resid ? 1 : 0 });
  const p2 = await gpu.pipeline('layerNormParamGrad', layerNormParamGradWgsl);
  const u = gpu.uniform(pack(a.rows, a.width, a.g.off, a.b.off), `${name}.params`);
  const u2 = gpu.uniform(pack(a.rows, a.width, a.dg.off, a.db.off), `${name}.grad.params`);
  return [
    gpu.dispatch(`${name}.dx`, p1, [u, a.x, pair(a.g, a.b, name), a.dy, a.stats, a.resid ?? gpu.placeholder('read'), a.dx], groups1d(a.rows)),
    gpu.dispatch(`${name}.dparams`, p2, [u2, a.x, a.dy, a.stats, pair(a.dg, a.db, name)], groups1d(a.width)),
  ];
}
export type { Ref };
