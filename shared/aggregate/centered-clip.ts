// Centered clipping (Karimireddy, He, Jaggi, ICML'21, arXiv 2012.10333):
//   v ← v + Σ wᵢ · clip_τ(xᵢ − v) / Σ wᵢ,   clip_τ(z) = z · min(1, τ / ‖z‖),
// repeated a few times from a robust starting point. An update far from the crowd moves v by at most τ
// times its weight share, whatever its size; honest updates inside the radius count in full.
//
// Memory: no model-sized state beyond the inputs, the start and the result. With kᵢ = wᵢ·min(1, τ/‖xᵢ − v‖)/Σw
// (scalars, from the distances before the iteration), v' = (1 − Σkᵢ)·v + Σ kᵢ·xᵢ: so after any number of
// iterations v = a·start + Σ bᵢ·xᵢ, with a and bᵢ scalars. Each pass builds that v over one chunk of
// coordinates at a time (128 KB, in cache) and sums the distances to it, rather than holding v (8 bytes a
// parameter in float64: 1 GB at 124M) and a step vector; the same arithmetic in float64, grouped
// differently (so last-place differences from the iterated form).
//
// With few inputs (n ≤ GRAM_MAX: rounds of a few updates, the large models' case) the distances need no
// pass over the model at all after one: every ‖xⱼ − v‖² is a quadratic form in (a, b) over the Gram matrix
// of start and the inputs, summed once in float64 (one pass reading each vector once, where each
// iteration's pass read them twice and built v). Cancellation costs about 1e-16 · ‖x‖² / ‖x − v‖² relative
// error in a distance: nothing, unless the inputs all but coincide (then τ is tiny and the result is the
// start to within float32's last place either way). Beyond GRAM_MAX the matrix's (n+1)(n+2)/2 products a
// coordinate outgrow the passes' 2n + 1 per iteration.

const CHUNK = 1 << 14;
const GRAM_MAX = 8;

export type CenteredClipOptions = {
  /** Starting point, e.g. the previous round's aggregate; default the coordinate-wise median. */
  center?: Float32Array;
  /** Clipping radius; default the median distance of the inputs from the starting point. */
  tau?: number;
  iterations: number;
};

/** `into`: where the result goes (may be `start` itself, when the caller owns it: each chunk of the start
 * is read for the last time just before its result is written); default a new array. */
export function centeredClip(
  xs: Float32Array[], weights: number[], start: Float32Array, opts: CenteredClipOptions, into?: Float32Array,
): Float32Array {
  const d = start.length, n = xs.length;
  const total = weights.reduce((a, b) => a + b, 0);
  // v = a·start + Σ b[j]·xs[j]; inputs with b[j] = 0 are left out of the sum (0 · ∞ would be NaN)
  let a = 1;
  const b = new Float64Array(n);
  const v = new Float64Array(Math.min(d, CHUNK));
  /** Builds v over [c0, c0 + len) into `v`. */
  const build = (c0: number, len: number): void => {
    for (let i = 0; i < len; i++) v[i] = a * start[c0 + i];
    for (let j = 0; j < n; j++) {
      const bj = b[j], x = xs[j];
      if (bj === 0) continue;
      for (let i = 0; i < len; i++) v[i] += bj * x[c0 + i];
    }
  };
  const gram = n <= GRAM_MAX ? gramMatrix([start, ...xs]) : undefined;
  /** Each input's distance to the current v. */
  const distances = (): number[] => {
    if (gram) return gramDistances(gram, a, b);
    const sq = new Float64Array(n);
    for (let c0 = 0; c0 < d; c0 += CHUNK) {
      const len = Math.min(d, c0 + CHUNK) - c0;
      build(c0, len);
      for (let j = 0; j < n; j++) {
        const x = xs[j];
        let acc = sq[j];
        for (let i = 0; i < len; i++) { const z = x[c0 + i] - v[i]; acc += z * z; }
        sq[j] = acc;
      }
    }
    return Array.from(sq, Math.sqrt);
  };
  const out = into ?? new Float32Array(d);
  let dist = distances();
  let tau = opts.tau;
  if (tau === undefined) {
    const sorted = [...dist].sort((p, q) => p - q);
    tau = sorted.length % 2 ? sorted[sorted.length >> 1] : (sorted[sorted.length / 2 - 1] + sorted[sorted.length / 2]) / 2;
  }
  if (!(tau > 0)) {
    if (out !== start) out.set(start);
    return out;
  }
  for (let it = 0; it < opts.iterations; it++) {
    const k = xs.map((_, j) => (weights[j] / total) * (dist[j] > tau ? tau / dist[j] : 1));
    const keep = 1 - k.reduce((p, q) => p + q, 0);
    a *= keep;
    for (let j = 0; j < n; j++) b[j] = b[j] * keep + k[j];
    if (it + 1 < opts.iterations) dist = distances();
  }
  for (let c0 = 0; c0 < d; c0 += CHUNK) {
    const len = Math.min(d, c0 + CHUNK) - c0;
    build(c0, len);
    for (let i = 0; i < len; i++) out[c0 + i] = v[i];
  }
  return out;
}

/** Gram matrix of the vectors (m × m, row-major, float64 sums of exact float64 products), one pass over
 * the coordinates a chunk at a time. */
function gramMatrix(ys: Float32Array[]): Float64Array {
  const m = ys.length, d = ys[0].length, g = new Float64Array(m * m);
  for (let c0 = 0; c0 < d; c0 += CHUNK) {
    const c1 = Math.min(d, c0 + CHUNK);
    for (let p = 0; p < m; p++) {
      const yp = ys[p];
      for (let q = p; q < m; q++) {
        const yq = ys[q];
        let acc = 0;
        for (let i = c0; i < c1; i++) acc += yp[i] * yq[i];
        g[p * m + q] += acc;
      }
    }
  }
  for (let p = 0; p < m; p++) for (let q = 0; q < p; q++) g[p * m + q] = g[q * m + p];
  return g;
}

/** ‖xⱼ − v‖ for v = a·start + Σ bₖ·xₖ, from the Gram matrix of [start, ...xs]. */
function gramDistances(g: Float64Array, a: number, b: Float64Array): number[] {
  const n = b.length, m = n + 1;
  const c = [a, ...b];
  // gv[p] = ⟨y_p, v⟩, vv = ‖v‖²
  const gv = new Float64Array(m);
  for (let p = 0; p < m; p++) { let acc = 0; for (let q = 0; q < m; q++) acc += g[p * m + q] * c[q]; gv[p] = acc; }
  let vv = 0;
  for (let p = 0; p < m; p++) vv += c[p] * gv[p];
  return Array.from({ length: n }, (_, j) => Math.sqrt(Math.max(0, g[(j + 1) * m + j + 1] - 2 * gv[j + 1] + vv)));
}
