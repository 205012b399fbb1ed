// Register-tiled matmul C[M,N] = op(A)·op(B) with a fused epilogue (bias, ReLU/GELU, residual,
// activation grads). Each thread owns an 8×4 block of C (8 rows × one vec4 of columns), so every
// loaded value feeds 4–8 multiply-adds; a 16×4 workgroup covers a 64×32 tile. No workgroup memory: on
// SwiftShader (CPU) a barrier-synchronised shared-memory tile measured ~100× slower than this (barriers
// become coroutine switches), while on a real GPU this tiling still keeps loads coalesced along N.
// B rows are read as vec4 when aligned (VEC_B; a K-by-4 vec4 variant for A measured no faster here). Transposes (Aᵀ·B, A·Bᵀ for backward) and the epilogue
// are override constants, so each variant is its own specialised pipeline. Operands are element
// offsets into whole buffers, so weights are read straight out of the one flat parameter buffer.
import type { Dispatch, Gpu } from '../device.ts';

/** What happens to acc (= op(A)·op(B) [+ bias]) before it is stored in C. */
export const Epi = {
  none: 0, // C = acc
  relu: 1, // C = max(acc, 0)
  gelu: 2, // aux = acc; C = gelu(acc)          (aux keeps the pre-activation for backward)
  residual: 3, // C = acc + aux                 (aux is the residual stream)
  reluGrad: 4, // C = acc · [aux > 0]           (aux is the ReLU's output)
  geluGrad: 5, // C = acc · gelu'(aux)          (aux is the GELU's input)
} as const;
export type Epi = (typeof Epi)[keyof typeof Epi];

/** Rows of C per thread, columns per thread, and the workgroup's shape in threads. */
export const rowsPerThread = 8, colsPerThread = 4, wgX = 16, wgY = 4;
export const tileM = rowsPerThread * wgY, tileN = colsPerThread * wgX;

const R = rowsPerThread;
const each = (f: (i: number) => string, sep = '\n  ') => Array.from({ length: R }, (_, i) => f(i)).join(sep);

export const matmulWgsl = /* wgsl */ `
struct Params { M: u32, N: u32, K: u32, offA: u32, offB: u32, offC: u32, offBias: u32, offAux: u32, hasBias: u32, p0: u32, p1: u32, p2: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> A: array<f32>;
@group(0) @binding(2) var<storage, read> B: array<f32>;
@group(0) @binding(3) var<storage, read_write> C: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
@group(0) @binding(5) var<storage, read> aux: array<f32>; // residual / activation for the grad epilogues
@group(0) @binding(6) var<storage, read_write> pre: array<f32>; // GELU input saved for backward
@group(0) @binding(7) var<storage, read> B4: array<vec4f>; // B again, as vec4 (VEC_B only)

override TRANS_A: bool = false;
override TRANS_B: bool = false;
override VEC_B: bool = false; // B row-major with N and offB multiples of 4
override EPI: u32 = 0u;

// Out-of-range rows/columns are clamped (valid memory, results discarded at the store), once per
// thread before the K loop, so the inner loop has no branches and little index arithmetic.
fn rowBase(m: u32) -> u32 {
  let mm = min(m, p.M - 1u);
  if (TRANS_A) { return p.offA + mm; }
  return p.offA + mm * p.K;
}
fn ldA(base: u32, k: u32) -> f32 {
  if (TRANS_A) { return A[base + k * p.M]; }
  return A[base + k];
}
fn ldB(k: u32, n: vec4u) -> vec4f {
  if (VEC_B) { return B4[(p.offB + k * p.N + n.x) / 4u]; }
  if (TRANS_B) { return vec4f(B[n.x + k], B[n.y + k], B[n.z + k], B[n.w + k]); }
  let row = p.offB + k * p.N;
  return vec4f(B[row + n.x], B[row + n.y], B[row + n.z], B[row + n.w]);
}
const GC = 0.7978845608028654; // sqrt(2/pi)
// tanh's argument is clamped: some backends compute tanh via exp and return NaN past |u| ≈ 44,
// while tanh(±15) is already ±1 in f32.
fn tanhGelu(x: f32) -> f32 { return tanh(clamp(GC * (x + 0.044715 * x * x * x), -15.0, 15.0)); }
fn gelu(x: f32) -> f32 { return 0.5 * x * (1.0 + tanhGelu(x)); }
fn geluGrad(x: f32) -> f32 {
  let t = tanhGelu(x);
  return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * GC * (1.0 + 3.0 * 0.044715 * x * x);
}
fn store1(r: u32, c: u32, acc: f32) {
  if (r >= p.M || c >= p.N) { return; }
  var v = acc;
  if (p.hasBias != 0u) { v += bias[p.offBias + c]; }
  let o = r * p.N + c;
  if (EPI == 1u) { v = max(v, 0.0); }
  else if (EPI == 2u) { pre[p.offAux + o] = v; v = gelu(v); }
  else if (EPI == 3u) { v += aux[p.offAux + o]; }
  else if (EPI == 4u) { v = select(0.0, v, aux[p.offAux + o] > 0.0); }
  else if (EPI == 5u) { v *= geluGrad(aux[p.offAux + o]); }
  C[p.offC + o] = v;
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
  if (TRANS_B) { n = p.offB + n * p.K; }
  for (var k = 0u; k < p.K; k++) {
    let b = ldB(k, n);
    ${each((i) => `a${i} += ldA(ra${i}, k) * b;`, ' ')}
  }
  ${each((i) => `store(r + ${i}u, c, a${i});`)}
}`;


/** A tensor operand: a buffer and an element offset into it. */
export type Ref = { buf: GPUBuffer; off: number };
export const at = (buf: GPUBuffer, off = 0): Ref => ({ buf, off });

export type MatmulArgs = {
  a: Ref; b: Ref; c: Ref; M: number; N: number; K: number;
  transA?: boolean; transB?: boolean; bias?: Ref; epi?: Epi; aux?: Ref;
};

/** Packs the Params struct in WGSL field order (12 × u32 = 48 bytes). */
export function packMatmulParams(a: MatmulArgs): ArrayBuffer {
  return new Uint32Array([a.M, a.N, a.K, a.a.off, a.b.off, a.c.off, a.bias?.off ?? 0, a.aux?.off ?? 0, a.bias ? 1 : 0, 0, 0, 0]).buffer;
}

export async function matmul(gpu: Gpu, a: MatmulArgs, name = 'matmul'): Promise<Dispatch> {
  const epi = a.epi ?? Epi.none;
  if (epi !== Epi.none && epi !== Epi.relu && !a.aux) throw new Error(`${name}: epilogue ${epi} needs an aux operand`);
  const vecB = !a.transB && a.N % 4 === 0 && a.b.off % 4 === 0;
  const pipeline = await gpu.pipeline('matmul', matmulWgsl, {
    TRANS_A: a.transA ? 1 : 0, TRANS_B: a.transB ? 1 : 0, VEC_B: vecB ? 1 : 0, EPI: epi,
  });
  const u = gpu.uniform(packMatmulParams(a), `${name}.params`);
  // Unused operands still need a binding: small placeholders (WebGPU forbids aliasing a written buffer).
  const bias = a.bias?.buf ?? gpu.placeholder('read');
  const aux = epi !== Epi.gelu && a.aux ? a.aux.buf : gpu.placeholder('read');
  const pre = epi === Epi.gelu ? a.aux!.buf : gpu.placeholder('write');
  return gpu.dispatch(name, pipeline, [u, a.a.buf, a.b.buf, a.c.buf, bias, aux, pre, a.b.buf], [Math.ceil(a.N / tileN), Math.ceil(a.M / tileM)]);
}
