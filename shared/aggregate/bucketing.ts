// Bucketing (Karimireddy, He, Jaggi, ICLR'22, arXiv 2006.09365): shuffle the n updates, average them in
// buckets of s, and hand the ⌈n/s⌉ bucket means to the robust rule. Averaging shrinks honest spread
// (non-IID shards, SGD noise) by about √s while each attacker still taints only one bucket.
import type { Update } from '../codec/index.ts';
import { rng } from '../util/rng.ts';
import { weightedMean } from './mean.ts';

export function bucketMeans(
  updates: Update[], weights: number[], length: number, s: number, seed: number,
): { updates: Update[]; weights: number[] } {
  if (s <= 1 || updates.length <= 1) return { updates, weights };
  const order = updates.map((_, i) => i);
  const r = rng(seed);
  for (let i = order.length - 1; i > 0; i--) {
    const j = r.int(i + 1);
    [order[i], order[j]] = [order[j], order[i]];
  }
  const out: Update[] = [], ws: number[] = [];
  for (let b = 0; b < order.length; b += s) {
    const ids = order.slice(b, b + s);
    const w = ids.map((i) => weights[i]);
    const total = w.reduce((a, c) => a + c, 0);
    if (total <= 0) continue;
    out.push({ kind: 'dense', values: weightedMean(ids.map((i) => updates[i]), w, length) });
    ws.push(total);
  }
  return { updates: out, weights: ws };
}
