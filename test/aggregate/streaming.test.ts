// Streaming aggregation: a round folds its updates into at most `buckets` live vectors, whatever K, and
// runs the robust rule over the bucket means at the close.
import { describe, expect, it } from 'vitest';
import { aggregate } from '../../shared/aggregate/index.ts';
import { weightedMean } from '../../shared/aggregate/mean.ts';
import { createRoundAccumulator, DEFAULT_ROUND_BUCKETS, ROUND_MEMORY_BYTES, roundBuckets } from '../../shared/aggregate/streaming.ts';
import type { Update } from '../../shared/codec/index.ts';
import { rng } from '../../shared/util/rng.ts';

const P = 64;
const updates = (k: number, seed: number): Update[] => {
  const r = rng(seed);
  return Array.from({ length: k }, () => ({ kind: 'dense' as const, values: Float32Array.from({ length: P }, () => r.normal()) }));
};

describe('streaming round aggregation', () => {
  it('keeps at most `buckets` vectors live however many updates a round folds', () => {
    for (const k of [4, 32, 33, 500, 3000]) {
      const acc = createRoundAccumulator(P, { buckets: 32, seed: 1 });
      let most = 0;
      for (const u of updates(k, k)) { acc.fold(u, 1); most = Math.max(most, acc.live); }
      expect(acc.count).toBe(k);
      expect(most).toBe(Math.min(k, 32));
      expect(acc.live).toBe(Math.min(k, 32));
      expect(acc.close('median').length).toBe(P);
    }
  });

  it('aggregates a round of up to `buckets` updates exactly as aggregate() does', () => {
    const us = updates(10, 7), ws = us.map((_, i) => 1 + (i % 3));
    for (const rule of ['median', 'trimmed-mean', 'centered-clip', 'multi-krum'] as const) {
      const acc = createRoundAccumulator(P, { seed: 5 });
      us.forEach((u, i) => acc.fold(u, ws[i]));
      expect(Array.from(acc.close(rule))).toEqual(Array.from(aggregate(rule, us, ws, { seed: 5 })));
    }
  });

  it('gives, under the mean rule over bucket means, the weighted mean of every update folded', () => {
    const us = updates(700, 3), ws = us.map((_, i) => (i % 5) / 4);
    const acc = createRoundAccumulator(P, { buckets: 16, seed: 2 });
    us.forEach((u, i) => acc.fold(u, ws[i]));
    const got = acc.close('mean'), want = weightedMean(us, ws, P);
    for (let i = 0; i < P; i++) expect(got[i]).toBeCloseTo(want[i], 5);
    expect(acc.counted).toBe(ws.filter((w) => w > 0).length);
  });

  it('keeps a hostile minority that taints under half the buckets out of the median over bucket means', () => {
    // 432 honest updates near +1, 8 hostile at −100: at most 8 of 32 bucket means are pulled
    const r = rng(9);
    const acc = createRoundAccumulator(P, { buckets: 32, seed: 4 });
    for (let j = 0; j < 440; j++) {
      const hostile = j % 55 === 0;
      acc.fold({ kind: 'dense', values: Float32Array.from({ length: P }, () => (hostile ? -100 : 1 + 0.01 * r.normal())) }, 1);
    }
    const m = acc.close('median');
    for (const x of m) expect(Math.abs(x - 1)).toBeLessThan(0.1);
  });

  it('hands over its kept dense arrays after the close for reuse, never the result, and nothing once it holds bucket sums', () => {
    const us = updates(4, 3);
    const acc = createRoundAccumulator(P, { buckets: 32, seed: 1 });
    for (const u of us) acc.fold(u, 1);
    const result = acc.close('centered-clip');
    expect(result).toEqual(aggregate('centered-clip', us, [1, 1, 1, 1], { seed: 1 }));
    const spare = acc.release([result]);
    expect(spare.map((x) => x.buffer)).toEqual(us.map((u) => (u.kind === 'dense' ? u.values.buffer : undefined)));
    expect(acc.live).toBe(0);
    // krum's result is a copy of one input: excluded by buffer when it is one of them
    const acc2 = createRoundAccumulator(P, { buckets: 32, seed: 1 });
    for (const u of us) acc2.fold(u, 1);
    expect(acc2.release([us[1].kind === 'dense' ? us[1].values : new Float32Array(0)])).toHaveLength(3);
    const big = createRoundAccumulator(P, { buckets: 2, seed: 1 });
    for (const u of updates(5, 4)) big.fold(u, 1);
    big.close('mean');
    expect(big.release()).toEqual([]);
  });
});

describe('a round\'s bucket count (roundBuckets)', () => {
  it('keeps every update of a small round whole, and fits large rounds of large models into the memory', () => {
    expect(roundBuckets(4, 1e5)).toBe(4);
    expect(roundBuckets(32, 1e5)).toBe(32);
    expect(roundBuckets(1000, 1e5)).toBe(DEFAULT_ROUND_BUCKETS);
    // 124M parameters: a round of 4 int8 updates stays exact (2 GB of float32); a swarm round of 100 sums
    // into 2 float64 buckets (2 GB) rather than 32 (32 GB)
    expect(roundBuckets(4, 126_860_544)).toBe(4);
    expect(roundBuckets(100, 126_860_544)).toBe(2);
    expect(roundBuckets(100, 31_000_000)).toBe(12);
    expect(12 * 8 * 31_000_000).toBeLessThanOrEqual(ROUND_MEMORY_BYTES);
    // six 124M updates whole would be 3.04 GB: summed into 2 buckets instead
    expect(roundBuckets(6, 126_860_544)).toBe(2);
  });
});
