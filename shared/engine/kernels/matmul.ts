// Matmul C[M,N] = op(A)·op(B) with a fused epilogue; matmul() picks the kernel the device's policy
// names (policy.ts): this file's register-tiled one, or the shared-memory one (matmul-shared.ts).
//
// Register-tiled matmul C[M,N] = op(A)·op(B) with a fused epilogue (bias, ReLU/GELU, residual,
// activation grads). Each thread owns an 8×4 block of C (8 rows × one vec4 of columns), so every
// loaded value feeds 4–8 multiply-adds; a 16×4 workgroup covers a 64×32 tile. No workgroup memory: on
// SwiftShader (CPU) a barrier-synchronised shared-memory tile measured ~100× slower than this (barriers
// become coroutine switches), while on a real GPU this tiling still keeps loads coalesced along N.
// B rows are read as vec4 when aligned (VEC_B; a K-by-4 vec4 variant for A measured no faster here).
// Transposes (Aᵀ·B, A·Bᵀ for backward) and the epilogue are override constants, so each variant is its
// own specialised pipeline. Operands are element offsets into whole buffers, so weights are read
// straight out of the one flat parameter buffer.
import type { Dispatch, Gpu } from '../device.ts';
import { Epi, matmulBindings, matmulHeaderWgsl, strides, type MatmulArgs } from './matmul-common.ts';
import { matmulShared } from './matmul-shared.ts';

export { at, Epi, packMatmulParams, strides, type MatmulArgs, type Ref } from './matmul-common.ts';

/** Rows of C per thread, columns per thread, and the workgroup's shape in threads. */
export const rowsPerThread = 8, colsPerThread = 4, wgX = 16, wgY = 4;
export const tileM = rowsPerThread * wgY, tileN = colsPerThread * wgX;

const R = rowsPerThread;
const each = (f: (i: number) => string, sep = '\n  ') => Array.from({ length: R }, (_, i) => f(i)).join(sep);

export const matmulWgsl = /* wgsl */ `
${matmulHeaderWgsl}
@group(0) @binding(7) var<storage, read> B4: array<vec4f>; // B again, as vec4 (VEC_B only)

override TRANS_A: bool = false;
override TRANS_B: bool = false;
override VEC_B: bool = false; // B row-major with its stride and offB multiples of 4
override EPI: u32 = 0u;

// Out-of-range rows/columns are clamped (valid memory, results discarded at the store), once per
// thread before the K loop, so the inner loop has no branches and little index arithmetic.
fn rowBase(m: u32) -> u32 {
  let mm = min(m, p.M - 1u);
  if (TRANS_A) { return p.offA + mm; }
  return p.offA + mm * p.lda;
}
fn ldA(base: u32, k: u32) -> f32 {
  if (TRANS_A) { return A[base + k * p.lda]; }
  return A[base + k];
}
fn ldB(k: u32, n: vec4u) -> vec4f {
  if (VEC_B) { return B4[(p.offB + k * p.ldb + n.x) / 4u]; }
  if (TRANS_B) { return vec4f(B[n.x + k], B[n.y + k], B[n.z + k], B[n.w + k]); }
  let row = p.offB + k * p.ldb;
  return vec4f(B[row + n.x], B[row + n.y], B[row + n.z], B[row + n.w]);
}
fn store(r: u32, c: u32, v: vec4f) { store1(r, c, v.x); store1(r, c + 1u, v.y); store1(r, c + 2u, v.z); store1(r, c + 3u, v.w); }

@compute @workgroup_size(${wgX}, ${wgY})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let r = gid.y * ${R}u;
  let c = gid.x * 4u;
  if (r >= p.M || c >= p.N) { return; }
  ${each((i) => `var a${i} = vec4f();`, ' ')}
  ${each((i) => `let ra${i} = rowBase(r + ${i}u);`, ' ')}
  // Columns c..c+3, clamped; for Bᵀ they are row starts in B [N,K].
  let last = p.N - 1u;
  var n = vec4u(c, min(c + 1u, last), min(c + 2u, last), min(c + 3u, last));
  if (TRANS_B) { n = p.offB + n * p.ldb; }
  for (var k = 0u; k < p.K; k++) {
    let b = ldB(k, n);
    ${each((i) => `a${i} += ldA(ra${i}, k) * b;`, ' ')}
  }
  ${each((i) => `store(r + ${i}u, c, a${i});`)}
}`;

/** op(A)·op(B) + epilogue as one dispatch, with the kernel gpu.policy.matmul names. */
export async function matmul(gpu: Gpu, a: MatmulArgs, name = 'matmul'): Promise<Dispatch> {
  if (gpu.policy.matmul === 'shared') return matmulShared(gpu, a, name);
  return matmulRegister(gpu, a, name);
}

/** The register-tiled kernel regardless of policy. */
export async function matmulRegister(gpu: Gpu, a: MatmulArgs, name = 'matmul'): Promise<Dispatch> {
  const epi = a.epi ?? Epi.none;
  const bindings = matmulBindings(gpu, a, name);
  const vecB = !a.transB && a.N % 4 === 0 && strides(a).ldb % 4 === 0 && a.b.off % 4 === 0;
  const pipeline = await gpu.pipeline('matmul', matmulWgsl, {
    TRANS_A: a.transA ? 1 : 0, TRANS_B: a.transB ? 1 : 0, VEC_B: vecB ? 1 : 0, EPI: epi,
  });
  return gpu.dispatch(name, pipeline, [...bindings, a.b.buf], [Math.ceil(a.N / tileN), Math.ceil(a.M / tileM)]);
}
