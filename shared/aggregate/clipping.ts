// Norm clipping, two pre-aggregators.
//
// Static clipping, ByzFL's Clipping(c): xᵢ ← xᵢ · min(1, c / ‖xᵢ‖). ByzFL's default c = 2 is an absolute
// norm; pseudo-gradients have no fixed scale, so the relay's default c is the median input norm.
//
// Adaptive robust clipping (ARC; Allouah et al., arXiv 2405.14432), ByzFL's ARC(f): the
// k = ⌊2 · (f/n) · (n − f)⌋ largest vectors are clipped to the norm of the (k+1)-th largest; the rest are
// untouched. The threshold adapts to the round, so no scale is needed.
import { argsort, l2, scaled } from './distances.ts';

export function staticClip(xs: Float32Array[], c: number): Float32Array[] {
  return xs.map((x) => { const r = l2(x); return r > c ? scaled(x, c / r) : x; });
}

export function arcClip(xs: Float32Array[], f: number): Float32Array[] {
  const n = xs.length;
  const k = Math.min(n - 1, Math.floor(2 * (f / n) * (n - f)));
  if (k <= 0) return xs;
  const norms = xs.map(l2);
  const order = argsort(norms.map((v) => -v)); // largest first
  const threshold = norms[order[k]];
  const out = xs.slice();
  for (let t = 0; t < k; t++) {
    const j = order[t];
    if (norms[j] > threshold) out[j] = scaled(xs[j], threshold / norms[j]);
  }
  return out;
}
