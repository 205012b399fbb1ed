// Centered clipping (Karimireddy, He, Jaggi, ICML'21, arXiv 2012.10333):
//   v ← v + Σ wᵢ · clip_τ(xᵢ − v) / Σ wᵢ,   clip_τ(z) = z · min(1, τ / ‖z‖),
// repeated a few times from a robust starting point. An update far from the crowd moves v by at most τ
// times its weight share, whatever its size; honest updates inside the radius count in full.

export type CenteredClipOptions = {
  /** Starting point, e.g. the previous round's aggregate; default the coordinate-wise median. */
  center?: Float32Array;
  /** Clipping radius; default the median distance of the inputs from the starting point. */
  tau?: number;
  iterations: number;
};

export function centeredClip(
  xs: Float32Array[], weights: number[], start: Float32Array, opts: CenteredClipOptions,
): Float32Array {
  const d = start.length;
  const v = Float64Array.from(start);
  const total = weights.reduce((a, b) => a + b, 0);
  let tau = opts.tau;
  if (tau === undefined) {
    const dist = xs.map((x) => distance(x, v)).sort((a, b) => a - b);
    tau = dist.length % 2 ? dist[dist.length >> 1] : (dist[dist.length / 2 - 1] + dist[dist.length / 2]) / 2;
  }
  if (!(tau > 0)) return Float32Array.from(v);
  // Each iteration's coefficients come from the distances to v before it moves; then each coordinate's
  // step is summed over the inputs in order and added at once: the same sums as a whole step vector, without
  // holding one (8 bytes a parameter: 1 GB at 124M).
  for (let it = 0; it < opts.iterations; it++) {
    const ks: number[] = [], ins: Float32Array[] = [];
    xs.forEach((x, j) => {
      const dist = distance(x, v);
      const k = (weights[j] / total) * (dist > tau ? tau / dist : 1);
      if (k !== 0) { ks.push(k); ins.push(x); }
    });
    const m = ins.length;
    for (let i = 0; i < d; i++) {
      const vi = v[i];
      let s = 0;
      for (let j = 0; j < m; j++) s += ks[j] * (ins[j][i] - vi);
      v[i] = vi + s;
    }
  }
  return Float32Array.from(v);
}

function distance(x: Float32Array, v: Float64Array): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) { const z = x[i] - v[i]; s += z * z; }
  return Math.sqrt(s);
}
