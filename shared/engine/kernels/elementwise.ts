// Whole-buffer elementwise kernels over the flat parameter layout: AdamW in place (with the global-norm
// clip folded in) and the pseudo-gradient Δ = θ_base − θ. One dispatch per buffer: the whole model, or
// each segment when it is held in several (param-segments.ts), since the update is per element.
import { flatIndexWgsl, type Dispatch, type Gpu } from '../device.ts';
import { groups1d, packStruct, wg } from './pack.ts';
import type { AdamWOptions } from '../../reference/adamw.ts';

export const adamwWgsl = /* wgsl */ `
struct Params { n: u32, lr: f32, beta1: f32, beta2: f32, eps: f32, weightDecay: f32, clipNorm: f32, p0: u32 }
// Written before each step's submit: loss slot, bias corrections 1-β1^t and 1-β2^t.
struct Step { slot: u32, bc1: f32, bc2: f32, p0: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<uniform> s: Step;
// vec4 views: buffers are padded to 16 bytes, and the zero padding stays zero under AdamW.
@group(0) @binding(2) var<storage, read_write> theta: array<vec4f>;
@group(0) @binding(3) var<storage, read> grad: array<vec4f>;
@group(0) @binding(4) var<storage, read_write> m: array<vec4f>;
@group(0) @binding(5) var<storage, read_write> v: array<vec4f>;
@group(0) @binding(6) var<storage, read> norm: array<f32>; // [0] = global grad norm
${flatIndexWgsl}
@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = flatGroup(wid, nwg) * ${wg}u + li;
  if (i >= (p.n + 3u) / 4u) { return; }
  // Global-norm clipping exactly as clipGradNorm: scale by maxNorm / (norm + 1e-6) when norm > maxNorm.
  var k = 1.0;
  if (p.clipNorm > 0.0 && norm[0] > p.clipNorm) { k = p.clipNorm / (norm[0] + 1e-6); }
  let g = grad[i] * k;
  let mi = p.beta1 * m[i] + (1.0 - p.beta1) * g;
  let vi = p.beta2 * v[i] + (1.0 - p.beta2) * g * g;
  m[i] = mi;
  v[i] = vi;
  let t = theta[i];
  theta[i] = t - p.lr * ((mi / s.bc1) / (sqrt(vi / s.bc2) + p.eps) + p.weightDecay * t);
}`;

/** clipNorm ≤ 0 or Infinity means no clipping (the kernel sees 0). */
export function packAdamwParams(n: number, o: AdamWOptions, clipNorm: number): ArrayBuffer {
  const clip = clipNorm > 0 && Number.isFinite(clipNorm) ? clipNorm : 0;
  return packStruct([['u32', n], ['f32', o.lr], ['f32', o.beta1], ['f32', o.beta2], ['f32', o.eps], ['f32', o.weightDecay], ['f32', clip], ['u32', 0]]);
}

export function packStep(slot: number, t: number, o: AdamWOptions): ArrayBuffer {
  return packStruct([['u32', slot], ['f32', 1 - o.beta1 ** t], ['f32', 1 - o.beta2 ** t], ['u32', 0]]);
}

export type AdamwBuffers = { params: GPUBuffer; step: GPUBuffer; theta: GPUBuffer; grad: GPUBuffer; m: GPUBuffer; v: GPUBuffer; norm: GPUBuffer };

export async function adamw(gpu: Gpu, n: number, b: AdamwBuffers): Promise<Dispatch> {
  const pipeline = await gpu.pipeline('adamw', adamwWgsl);
  return gpu.dispatch('adamw', pipeline, [b.params, b.step, b.theta, b.grad, b.m, b.v, b.norm], groups1d(Math.ceil(n / 4)));
}

export const deltaWgsl = /* wgsl */ `
struct Params { n: u32, p0: u32, p1: u32, p2: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> base: array<f32>;
@group(0) @binding(2) var<storage, read> theta: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
${flatIndexWgsl}
@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = flatGroup(wid, nwg) * ${wg}u + li;
  if (i >= p.n) { return; }
  out[i] = base[i] - theta[i];
}`;

/** out = base − theta over n elements. */
export async function delta(gpu: Gpu, n: number, base: GPUBuffer, theta: GPUBuffer, out: GPUBuffer): Promise<Dispatch> {
  const pipeline = await gpu.pipeline('delta', deltaWgsl);
  const u = gpu.uniform(packStruct([['u32', n], ['u32', 0], ['u32', 0], ['u32', 0]]), 'delta.params');
  return gpu.dispatch('delta', pipeline, [u, base, theta, out], groups1d(n));
}
