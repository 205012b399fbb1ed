// What every matmul kernel shares: the epilogue codes, the operand and argument types, the packed
// Params struct, and the WGSL header (bindings 0–6, GELU, and store1 applying bias + epilogue), so the
// register-tiled and the shared-memory kernels cannot drift apart in what they compute.
import type { Gpu } from '../device.ts';

/** What happens to acc (= op(A)·op(B) [+ bias]) before it is stored in C. */
export const Epi = {
  none: 0, // C = acc
  relu: 1, // C = max(acc, 0)
  gelu: 2, // aux = acc; C = gelu(acc)          (aux keeps the pre-activation for backward)
  residual: 3, // C = acc + aux                 (aux is the residual stream)
  reluGrad: 4, // C = acc · [aux > 0]           (aux is the ReLU's output)
  geluGrad: 5, // C = acc · gelu'(aux)          (aux is the GELU's input)
  accumulate: 6, // C = acc + C                  (sums a weight gradient over row chunks)
} as const;
export type Epi = (typeof Epi)[keyof typeof Epi];

export const matmulHeaderWgsl = /* wgsl */ `
struct Params { M: u32, N: u32, K: u32, offA: u32, offB: u32, offC: u32, offBias: u32, offAux: u32, hasBias: u32, lda: u32, ldb: u32, ldc: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> A: array<f32>;
@group(0) @binding(2) var<storage, read> B: array<f32>;
@group(0) @binding(3) var<storage, read_write> C: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
@group(0) @binding(5) var<storage, read> aux: array<f32>; // residual / activation for the grad epilogues
@group(0) @binding(6) var<storage, read_write> pre: array<f32>; // GELU input saved for backward

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
  let o = r * p.ldc + c;
  if (EPI == 1u) { v = max(v, 0.0); }
  else if (EPI == 2u) { pre[p.offAux + o] = v; v = gelu(v); }
  else if (EPI == 3u) { v += aux[p.offAux + o]; }
  else if (EPI == 4u) { v = select(0.0, v, aux[p.offAux + o] > 0.0); }
  else if (EPI == 5u) { v *= geluGrad(aux[p.offAux + o]); }
  else if (EPI == 6u) { v += C[p.offC + o]; }
  C[p.offC + o] = v;
}
`;

/** A tensor operand: a buffer and an element offset into it. */
export type Ref = { buf: GPUBuffer; off: number };
export const at = (buf: GPUBuffer, off = 0): Ref => ({ buf, off });

export type MatmulArgs = {
  a: Ref; b: Ref; c: Ref; M: number; N: number; K: number;
  transA?: boolean; transB?: boolean; bias?: Ref; epi?: Epi; aux?: Ref;
  /**
   * Row strides of the stored A, B and C (aux shares C's), in elements; default: packed (K or M for A,
   * N or K for B, N for C). A larger stride multiplies a block of columns, which is how a matrix split
   * into row ranges across buffers (param-segments.ts) meets the unsplit operand beside it.
   */
  lda?: number; ldb?: number; ldc?: number;
};

/** The strides a matmul runs with (explicit, or packed). */
export function strides(a: MatmulArgs): { lda: number; ldb: number; ldc: number } {
  return { lda: a.lda ?? (a.transA ? a.M : a.K), ldb: a.ldb ?? (a.transB ? a.K : a.N), ldc: a.ldc ?? a.N };
}

/** Packs the Params struct in WGSL field order (12 × u32 = 48 bytes). */
export function packMatmulParams(a: MatmulArgs): ArrayBuffer {
  const { lda, ldb, ldc } = strides(a);
  return new Uint32Array([a.M, a.N, a.K, a.a.off, a.b.off, a.c.off, a.bias?.off ?? 0, a.aux?.off ?? 0, a.bias ? 1 : 0, lda, ldb, ldc]).buffer;
}

/** Bindings 0–6 in header order; unused operands get small placeholders (WebGPU forbids aliasing a written buffer). */
export function matmulBindings(gpu: Gpu, a: MatmulArgs, name: string): GPUBuffer[] {
  const epi = a.epi ?? Epi.none;
  if (epi !== Epi.none && epi !== Epi.relu && epi !== Epi.accumulate && !a.aux) throw new Error(`${name}: epilogue ${epi} needs an aux operand`);
  const u = gpu.uniform(packMatmulParams(a), `${name}.params`);
  const bias = a.bias?.buf ?? gpu.placeholder('read');
  const aux = epi !== Epi.gelu && a.aux ? a.aux.buf : gpu.placeholder('read');
  const pre = epi === Epi.gelu ? a.aux!.buf : gpu.placeholder('write');
  return [u, a.a.buf, a.b.buf, a.c.buf, bias, aux, pre];
}
