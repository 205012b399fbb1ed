// Fused, numerically stable softmax cross-entropy: per row, the loss (log-sum-exp minus the target
// logit, max subtracted first) and its gradient (softmax − onehot) / rows, written over the logits.
// It also runs on one chunk of rows at a time (a large vocabulary's logits never exist for the whole
// batch): the chunk's losses land at `offLoss` and its gradient is scaled by the whole batch's rows.
import { flatIndexWgsl, type Dispatch, type Gpu } from '../device.ts';
import { groups1d, packStruct, wg } from './pack.ts';
import type { Ref } from './matmul.ts';

export const softmaxCeWgsl = /* wgsl */ `
struct Params { rows: u32, classes: u32, offTarget: u32, offLoss: u32, scaleRows: u32, p0: u32, p1: u32, p2: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> logits: array<f32>; // becomes dlogits
@group(0) @binding(2) var<storage, read> targets: array<u32>;
@group(0) @binding(3) var<storage, read_write> rowLoss: array<f32>;
${flatIndexWgsl}
@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let r = flatGroup(wid, nwg) * ${wg}u + li;
  if (r >= p.rows) { return; }
  let o = r * p.classes;
  var mx = logits[o];
  for (var c = 1u; c < p.classes; c++) { mx = max(mx, logits[o + c]); }
  var sum = 0.0;
  for (var c = 0u; c < p.classes; c++) { sum += exp(logits[o + c] - mx); }
  let t = targets[p.offTarget + r];
  rowLoss[p.offLoss + r] = log(sum) + mx - logits[o + t];
  let inv = 1.0 / (sum * f32(p.scaleRows));
  let invRows = 1.0 / f32(p.scaleRows);
  for (var c = 0u; c < p.classes; c++) {
    var g = exp(logits[o + c] - mx) * inv;
    if (c == t) { g -= invRows; }
    logits[o + c] = g;
  }
}`;

/** For a chunk: where its losses go in rowLoss, and the batch's total rows (the gradient's 1/rows). */
export type CeChunk = { offLoss: number; scaleRows: number };

/** Logits [rows, classes] at offset 0 of `logits`; targets are u32 at `target.off`. */
export async function softmaxCe(
  gpu: Gpu, logits: GPUBuffer, target: Ref, rowLoss: GPUBuffer, rows: number, classes: number, chunk: CeChunk = { offLoss: 0, scaleRows: rows }, name = 'softmaxCe',
): Promise<Dispatch> {
  const pipeline = await gpu.pipeline('softmaxCe', softmaxCeWgsl);
  const u = gpu.uniform(packStruct([
    ['u32', rows], ['u32', classes], ['u32', target.off], ['u32', chunk.offLoss], ['u32', chunk.scaleRows], ['u32', 0], ['u32', 0], ['u32', 0],
  ]), `${name}.params`);
  return gpu.dispatch(name, pipeline, [u, logits, target.buf, rowLoss], groups1d(rows));
}
