// Krum and Multi-Krum (Blanchard et al., NeurIPS'17), as ByzFL's Krum(f) and MultiKrum(f): each vector's
// score is the sum of its squared distances to its n − f − 1 nearest other vectors. Krum returns the
// vector with the lowest score; Multi-Krum averages the n − f lowest-scoring ones (weighted by their
// weights here; ByzFL's are all 1). Ties go to the lower index (numpy's argmin / stable argsort).
// Weights other than 0 do not change who is selected: Krum is a selection rule.
import { argsort, sqDistMatrix } from './distances.ts';

export function krumScores(xs: Float32Array[], f: number): Float64Array {
  const n = xs.length;
  const m = sqDistMatrix(xs);
  const k = Math.max(1, n - f - 1);
  return Float64Array.from(m, (row, i) => {
    const others = Array.from(row).filter((_, j) => j !== i).sort((a, b) => a - b);
    return others.slice(0, k).reduce((a, b) => a + b, 0);
  });
}

/** The ids of the m lowest-scoring vectors, lowest first. */
export function krumSelect(xs: Float32Array[], f: number, m: number): number[] {
  if (xs.length === 1) return [0];
  return argsort(krumScores(xs, f)).slice(0, Math.max(1, m));
}

export function multiKrum(xs: Float32Array[], weights: number[], f: number, m: number): Float32Array {
  const ids = krumSelect(xs, f, m);
  const d = xs[0].length, acc = new Float64Array(d);
  let total = ids.reduce((a, j) => a + weights[j], 0);
  const w = (j: number) => (total > 0 ? weights[j] : 1);
  if (!(total > 0)) total = ids.length;
  for (const j of ids) for (let i = 0; i < d; i++) acc[i] += w(j) * xs[j][i];
  return Float32Array.from(acc, (v) => v / total);
}
