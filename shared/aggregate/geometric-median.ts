// Geometric median (RFA, Pillutla, Kakade, Harchaoui, arXiv 1912.13445), by smoothed Weiszfeld as ByzFL's
// GeometricMedian(nu, T) computes it: z₀ = 0, then T times
//   βᵢ = αᵢ / max(ν, ‖xᵢ − z‖),   z ← Σ βᵢ xᵢ / Σ βᵢ
// with αᵢ the weight shares (ByzFL: 1/n). ByzFL's defaults are ν = 0.1, T = 3; ν there is an absolute
// distance, too coarse for pseudo-gradients of norm ~0.1, so the relay's defaults are ν = 1e-6 and T = 8
// (Weiszfeld from 0 needs a few more steps than from the mean). A vector with an infinite coordinate is
// left out, as ByzFL does (the codec refuses those earlier anyway).
export type GeometricMedianOptions = { nu: number; iterations: number };

export function geometricMedian(xs: Float32Array[], weights: number[], o: GeometricMedianOptions): Float32Array {
  const d = xs[0].length;
  const keep = xs.map((x, j) => j).filter((j) => weights[j] > 0 && xs[j].every(Number.isFinite));
  const total = keep.reduce((a, j) => a + weights[j], 0);
  let z = new Float64Array(d);
  for (let t = 0; t < o.iterations; t++) {
    const next = new Float64Array(d);
    let bs = 0;
    for (const j of keep) {
      let s = 0;
      for (let i = 0; i < d; i++) { const e = xs[j][i] - z[i]; s += e * e; }
      const b = weights[j] / total / Math.max(o.nu, Math.sqrt(s));
      bs += b;
      for (let i = 0; i < d; i++) next[i] += b * xs[j][i];
    }
    for (let i = 0; i < d; i++) next[i] /= bs;
    z = next;
  }
  return Float32Array.from(z);
}
