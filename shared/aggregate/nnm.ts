// Nearest-neighbour mixing (NNM; Allouah et al., AISTATS'23, arXiv 2302.01772), a pre-aggregator, as
// ByzFL's NNM(f): every vector is replaced by the mean of its n − f nearest vectors, itself included
// (ties to the lower index). It pulls honest vectors together before the robust rule, which is what keeps
// median, trimmed mean, Krum or centered clipping accurate when honest data are not identically distributed.
// Weights are carried through unchanged; the neighbour mean itself is unweighted, as in ByzFL.
import { argsort, sqDistMatrix } from './distances.ts';

export function nnm(xs: Float32Array[], f: number): Float32Array[] {
  const n = xs.length, d = xs[0].length;
  const k = Math.max(1, n - f);
  const m = sqDistMatrix(xs);
  return m.map((row) => {
    const ids = argsort(row).slice(0, k);
    const acc = new Float64Array(d);
    for (const j of ids) for (let i = 0; i < d; i++) acc[i] += xs[j][i];
    return Float32Array.from(acc, (v) => v / k);
  });
}
