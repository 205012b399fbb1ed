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
  if (n <= 4) return buildFour(out, start, a, xs, b);
  for (let c0 = 0; c0 < d; c0 += CHUNK) {
    const len = Math.min(d, c0 + CHUNK) - c0;
    build(c0, len);
    for (let i = 0; i < len; i++) out[c0 + i] = v[i];
  }
  return out;
}

/** The result a·start + Σ bⱼ·xⱼ for up to four inputs in one pass (the same sum, term by term in the
 * same order; an absent input's term is 0 · start). */
function buildFour(out: Float32Array, start: Float32Array, a: number, xs: Float32Array[], b: Float64Array): Float32Array {
  const [x0 = start, x1 = start, x2 = start, x3 = start] = xs;
  const b0 = b[0] ?? 0, b1 = b[1] ?? 0, b2 = b[2] ?? 0, b3 = b[3] ?? 0;
  for (let i = 0; i < out.length; i++) out[i] = a * start[i] + b0 * x0[i] + b1 * x1[i] + b2 * x2[i] + b3 * x3[i];
  return out;
}

/** Gram matrix of the vectors (m × m, row-major, float64 sums of exact float64 products), one pass over
 * the coordinates a chunk at a time. */
function gramMatrix(ys: Float32Array[]): Float64Array {
  const m = ys.length, d = ys[0].length, g = new Float64Array(m * m);
  if (m <= 5) return gramFive(ys, g);
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

/** gramMatrix for up to five vectors: every product of a coordinate from one load of each (2.5× less CPU
 * than a loop per pair at 124M); absent vectors repeat the first, their sums are left out. */
function gramFive(ys: Float32Array[], g: Float64Array): Float64Array {
  const m = ys.length, d = ys[0].length;
  const [y0, y1 = y0, y2 = y0, y3 = y0, y4 = y0] = ys;
  const s = new Float64Array(25);
  for (let c0 = 0; c0 < d; c0 += CHUNK) {
    const c1 = Math.min(d, c0 + CHUNK);
    let s00 = 0, s01 = 0, s02 = 0, s03 = 0, s04 = 0, s11 = 0, s12 = 0, s13 = 0, s14 = 0, s22 = 0, s23 = 0, s24 = 0, s33 = 0, s34 = 0, s44 = 0;
    for (let i = c0; i < c1; i++) {
      const p0 = y0[i], p1 = y1[i], p2 = y2[i], p3 = y3[i], p4 = y4[i];
      s00 += p0 * p0; s01 += p0 * p1; s02 += p0 * p2; s03 += p0 * p3; s04 += p0 * p4;
      s11 += p1 * p1; s12 += p1 * p2; s13 += p1 * p3; s14 += p1 * p4;
      s22 += p2 * p2; s23 += p2 * p3; s24 += p2 * p4;
      s33 += p3 * p3; s34 += p3 * p4; s44 += p4 * p4;
    }
    s[0] += s00; s[1] += s01; s[2] += s02; s[3] += s03; s[4] += s04;
    s[6] += s11; s[7] += s12; s[8] += s13; s[9] += s14;
    s[12] += s22; s[13] += s23; s[14] += s24;
    s[18] += s33; s[19] += s34; s[24] += s44;
  }
  for (let p = 0; p < m; p++) for (let q = p; q < m; q++) g[p * m + q] = g[q * m + p] = s[p * 5 + q];
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
