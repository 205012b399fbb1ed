// The outer step's gain for a big round, from the round's own spread: AdaScale (Johnson, Agrawal, Gu and
// Guestrin, "AdaScale SGD", arXiv 2007.05105) applied to DiLoCo's averaged pseudo-gradient. A mean of k
// updates has the same expected direction G as one of them, with its noise σ² cut to σ²/k; where noise
// dominates, a k-fold mean is worth up to k times the step, where the signal dominates, one step. The
// gain over the round size the job's outer learning rate was set for (kRef: its updatesPerRound, and at
// least DiLoCo's 8 replicas, whose outer lr 0.7 and momentum 0.9 the jobs' defaults are) is
//   r = (σ²/kRef + |G|²) / (σ²/k + |G|²),
// with σ² and |G|² estimated from this round alone: E|x|² = |G|² + σ², E|x̄|² = |G|² + σ²/k. It stays in
// [1, maxGain]: a round smaller than kRef keeps the job's step, and the cap bounds what a round whose
// updates were chosen to look alike (a hostile share) can make of its step.
import type { RoundSpread } from '../../shared/aggregate/streaming.ts';

/** The replicas DiLoCo's outer hyperparameters were tuned with (Douillard et al., arXiv 2311.08105). */
export const DILOCO_REPLICAS = 8;

export function outerGain(s: RoundSpread, kRef: number, maxGain: number): number {
  const k = s.effective;
  if (!(maxGain > 1) || !(k > 1) || !(k > kRef) || !(s.squareOfMean > 0)) return 1;
  const noise = Math.max(0, ((s.meanSquare - s.squareOfMean) * k) / (k - 1));
  const signal = Math.max(0, s.squareOfMean - noise / k);
  const r = (noise / kRef + signal) / (noise / k + signal);
  return Number.isFinite(r) ? Math.min(maxGain, Math.max(1, r)) : 1;
}
