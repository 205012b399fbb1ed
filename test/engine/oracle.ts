// Float64 CPU oracles for the engine's kernels, and a central finite-difference gradient in float64,
// so each kernel test compares the GPU against an independent computation.
import { rng } from '../../shared/util/rng.ts';

export type Vec = ArrayLike<number>;

export function randn(n: number, seed: number, scale = 1): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => r.normal() * scale);
}

/** C[M,N] = op(A)·op(B), A stored [M,K] (or [K,M] when transA), B stored [K,N] (or [N,K] when transB). */
export function matmul64(a: Vec, b: Vec, M: number, N: number, K: number, transA = false, transB = false): Float64Array {
  const c = new Float64Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += (transA ? a[k * M + m] : a[m * K + k]) * (transB ? b[n * K + k] : b[k * N + n]);
      c[m * N + n] = s;
    }
  }
  return c;
}

const GC = Math.sqrt(2 / Math.PI);
export const gelu64 = (x: number) => 0.5 * x * (1 + Math.tanh(GC * (x + 0.044715 * x ** 3)));

export function layerNorm64(x: Vec, g: Vec, b: Vec, rows: number, w: number): Float64Array {
  const y = new Float64Array(rows * w);
  for (let r = 0; r < rows; r++) {
    let mean = 0, v = 0;
    for (let j = 0; j < w; j++) mean += x[r * w + j];
    mean /= w;
    for (let j = 0; j < w; j++) v += (x[r * w + j] - mean) ** 2;
    const rstd = 1 / Math.sqrt(v / w + 1e-5);
    for (let j = 0; j < w; j++) y[r * w + j] = (x[r * w + j] - mean) * rstd * g[j] + b[j];
  }
  return y;
}

/** Causal multi-head attention on qkv [batch·T, 3w] → [batch·T, w]. */
export function attention64(qkv: Vec, batch: number, heads: number, T: number, w: number): Float64Array {
  const d = w / heads, scale = 1 / Math.sqrt(d);
  const out = new Float64Array(batch * T * w);
  const at = (r: number, part: number, h: number, e: number) => qkv[r * 3 * w + part * w + h * d + e];
  for (let b = 0; b < batch; b++) for (let h = 0; h < heads; h++) for (let i = 0; i < T; i++) {
    const s: number[] = [];
    for (let j = 0; j <= i; j++) {
      let dot = 0;
      for (let e = 0; e < d; e++) dot += at(b * T + i, 0, h, e) * at(b * T + j, 1, h, e);
      s.push(dot * scale);
    }
    const mx = Math.max(...s);
    const z = s.map((v) => Math.exp(v - mx));
    const sum = z.reduce((a, c) => a + c, 0);
    for (let e = 0; e < d; e++) {
      let o = 0;
      for (let j = 0; j <= i; j++) o += (z[j] / sum) * at(b * T + j, 2, h, e);
      out[(b * T + i) * w + h * d + e] = o;
    }
  }
  return out;
}

export function softmaxCe64(logits: Vec, targets: Vec, rows: number, classes: number): number {
  let loss = 0;
  for (let r = 0; r < rows; r++) {
    let mx = -Infinity;
    for (let c = 0; c < classes; c++) mx = Math.max(mx, logits[r * classes + c]);
    let s = 0;
    for (let c = 0; c < classes; c++) s += Math.exp(logits[r * classes + c] - mx);
    loss += Math.log(s) + mx - logits[r * classes + targets[r]];
  }
  return loss / rows;
}

/** Central differences in float64 of a scalar function of x (every coordinate). */
export function numericGrad(f: (x: Float64Array) => number, x0: Vec, h = 1e-5): Float64Array {
  const x = Float64Array.from(x0);
  const g = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const keep = x[i];
    x[i] = keep + h; const up = f(x);
    x[i] = keep - h; const down = f(x);
    x[i] = keep;
    g[i] = (up - down) / (2 * h);
  }
  return g;
}

export const dot64 = (a: Vec, b: Vec) => { let s = 0; for (let i = 0; i < a.length; i++) s += a[i] * b[i]; return s; };

/** Largest |a−b| / (atol + rtol·|b|); ≤ 1 means close. */
export function closeness(a: Vec, b: Vec, atol: number, rtol: number): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    const r = Math.abs(a[i] - b[i]) / (atol + rtol * Math.abs(b[i]));
    if (!(r <= worst)) worst = Number.isNaN(r) ? Infinity : r;
  }
  return worst;
}
