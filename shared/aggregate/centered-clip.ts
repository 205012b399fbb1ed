// Centered clipping (Karimireddy, He, Jaggi, ICML'21, arXiv 2012.10333):
//   v ← v + Σ wᵢ · clip_τ(xᵢ − v) / Σ wᵢ,   clip_τ(z) = z · min(1, τ / ‖z‖),
// repeated a few times from a robust starting point. An update far from the crowd moves v by at most τ
// times its weight share, whatever its size; honest updates inside the radius count in full.
//
// Memory: no model-sized state beyond the inputs, the start and the result. An iteration's coefficients
// need only the distances to v before it, and v at any coordinate is the start there plus the earlier
// iterations' steps, which depend on scalars alone: so each pass over the coordinates replays the earlier
// iterations per coordinate (a few multiply-adds) and sums the distances to the v it reaches, rather than
// holding v (8 bytes a parameter: 1 GB at 124M) and a step vector. Same operations in the same order as
// holding v in float64: the same bits.

export type CenteredClipOptions = {
  /** Starting point, e.g. the previous round's aggregate; default the coordinate-wise median. */
  center?: Float32Array;
  /** Clipping radius; default the median distance of the inputs from the starting point. */
  tau?: number;
  iterations: number;
};

/** `into`: where the result goes (may be `start` itself, when the caller owns it: each coordinate of the
 * start is read for the last time just before its result is written); default a new array. */
export function centeredClip(
  xs: Float32Array[], weights: number[], start: Float32Array, opts: CenteredClipOptions, into?: Float32Array,
): Float32Array {
  const d = start.length;
  const total = weights.reduce((a, b) => a + b, 0);
  // per finished iteration: the inputs that moved v (coefficient ≠ 0), in input order, and their coefficients
  const steps: { ks: number[]; ins: Float32Array[] }[] = [];
  /** v after the finished iterations, at coordinate i (float64, as the iterations sum it). */
  const vAt = (i: number): number => {
    let vi = start[i];
    for (const { ks, ins } of steps) {
      let s = 0;
      for (let j = 0; j < ins.length; j++) s += ks[j] * (ins[j][i] - vi);
      vi = vi + s;
    }
    return vi;
  };
  /** Each input's distance to v after the finished iterations. */
  const distances = (): number[] => {
    const n = xs.length, sq = new Float64Array(n);
    for (let i = 0; i < d; i++) {
      const vi = vAt(i);
      for (let j = 0; j < n; j++) { const z = xs[j][i] - vi; sq[j] += z * z; }
    }
    return Array.from(sq, Math.sqrt);
  };
  const out = into ?? new Float32Array(d);
  let dist = opts.iterations > 0 || opts.tau === undefined ? distances() : [];
  let tau = opts.tau;
  if (tau === undefined) {
    const sorted = [...dist].sort((a, b) => a - b);
    tau = sorted.length % 2 ? sorted[sorted.length >> 1] : (sorted[sorted.length / 2 - 1] + sorted[sorted.length / 2]) / 2;
  }
  if (!(tau > 0)) {
    if (out !== start) out.set(start);
    return out;
  }
  for (let it = 0; it < opts.iterations; it++) {
    const ks: number[] = [], ins: Float32Array[] = [];
    xs.forEach((x, j) => {
      const k = (weights[j] / total) * (dist[j] > tau ? tau / dist[j] : 1);
      if (k !== 0) { ks.push(k); ins.push(x); }
    });
    steps.push({ ks, ins });
    if (it + 1 < opts.iterations) dist = distances();
  }
  for (let i = 0; i < d; i++) out[i] = vAt(i);
  return out;
}
