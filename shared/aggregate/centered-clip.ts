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

const CHUNK = 1 << 14;

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
  /** Each input's distance to the current v. */
  const distances = (): number[] => {
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
