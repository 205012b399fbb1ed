// Golden vectors: small inputs whose answers were worked out by hand (the CC ones with a calculator),
// as ByzFL's and Flower's aggregator tests do.
import { describe, expect, it } from 'vitest';
import { aggregate, AggregationError, type AggregatorName } from '../../shared/aggregate/index.ts';
import { bucketMeans } from '../../shared/aggregate/bucketing.ts';
import { decodeUpdate, encodeUpdate, toDense, type Update } from '../../shared/codec/index.ts';

const dense = (...v: number[]): Update => ({ kind: 'dense', values: Float32Array.from(v) });
const ones = (n: number) => Array.from({ length: n }, () => 1);
const close = (got: Float32Array, want: number[], digits = 6) => {
  expect(got.length).toBe(want.length);
  want.forEach((w, i) => expect(got[i]).toBeCloseTo(w, digits));
};

describe('aggregators on dense inputs (golden vectors)', () => {
  const byzfl = [dense(1, 2, 3), dense(4, 5, 6), dense(7, 8, 9)];

  it('mean: plain and weighted', () => {
    close(aggregate('mean', [dense(1, 2), dense(3, 4), dense(5, 6)], ones(3)), [3, 4]);
    close(aggregate('mean', [dense(1, 2), dense(3, 4), dense(5, 6)], [1, 1, 2]), [3.5, 4.5]);
    close(aggregate('mean', byzfl, ones(3)), [4, 5, 6]);
  });

  it('median: odd, even, weighted, and one huge outlier', () => {
    close(aggregate('median', byzfl, ones(3)), [4, 5, 6]);
    close(aggregate('median', [dense(1), dense(2), dense(3), dense(10)], ones(4)), [2.5]);
    close(aggregate('median', [dense(1), dense(2), dense(3)], [1, 1, 3]), [3]);
    close(aggregate('median', [dense(1), dense(2), dense(3)], [1, 1, 2]), [2.5]);
    close(aggregate('median', [dense(3), dense(1), dense(2), dense(1e30)], [1, 1, 1, 0]), [2]);
    close(aggregate('median', [dense(0, -1), dense(1, 1e9), dense(2, 5)], ones(3)), [1, 5]);
  });

  it('trimmed mean: drops ⌊trim·n⌋ per side then averages', () => {
    close(aggregate('trimmed-mean', byzfl, ones(3), { trim: 0.34 }), [4, 5, 6]);
    close(aggregate('trimmed-mean', [dense(1), dense(2), dense(3), dense(100)], ones(4), { trim: 0.25 }), [2.5]);
    close(aggregate('trimmed-mean', [dense(1), dense(2), dense(3), dense(4), dense(100)], ones(5)), [3]); // default 0.2 → f = 1
    close(aggregate('trimmed-mean', [dense(1), dense(2), dense(3), dense(100)], ones(4), { trim: 0 }), [26.5]);
    // weights apply to what is kept: keep 2 (w 1) and 3 (w 3) → 2.75
    close(aggregate('trimmed-mean', [dense(1), dense(2), dense(3), dense(100)], [1, 1, 3, 1], { trim: 0.25 }), [2.75]);
  });

  it('centered clipping: one and two iterations around a given center, radius 1', () => {
    const xs = [dense(3, 4), dense(0, 0.5)];
    const c = new Float32Array(2);
    // clip([3,4]) = [0.6, 0.8]; [0, 0.5] is inside the radius → mean [0.3, 0.65]
    close(aggregate('centered-clip', xs, ones(2), { center: c, tau: 1, iterations: 1, bucket: 1 }), [0.3, 0.65]);
    close(aggregate('centered-clip', xs, ones(2), { center: c, tau: 1, iterations: 2, bucket: 1 }), [0.4637626, 0.9642981]);
    // a radius larger than every distance: exactly the mean after one iteration
    close(aggregate('centered-clip', xs, ones(2), { center: c, tau: 100, iterations: 1, bucket: 1 }), [1.5, 2.25]);
  });

  it('centered clipping with its defaults (median start, median-distance radius) ignores an outlier', () => {
    // start 1.5; distances 1.5, 0.5, 0.5, 98.5 → τ = 1; clipped steps −1, −0.5, +0.5, +1 sum to 0
    const xs = [dense(0), dense(1), dense(2), dense(100)];
    close(aggregate('centered-clip', xs, ones(4), { bucket: 1 }), [1.5]);
    close(aggregate('mean', xs, ones(4)), [25.75]);
    // all identical: any rule returns that vector
    for (const name of ['centered-clip', 'trimmed-mean', 'median', 'mean'] as AggregatorName[]) {
      close(aggregate(name, [dense(7, -1), dense(7, -1), dense(7, -1)], ones(3)), [7, -1]);
    }
  });

  it('bucketing averages disjoint buckets of s after a seeded shuffle', () => {
    const xs = [dense(0), dense(10), dense(100), dense(1000), dense(5)];
    const b = bucketMeans(xs, ones(5), 1, 2, 3);
    expect(b.updates.length).toBe(3);
    expect(b.weights.slice().sort()).toEqual([1, 2, 2]);
    // Σ weight·mean is preserved, and each mean is the mean of its members
    const sum = b.updates.reduce((a, u, j) => a + toDense(u)[0] * b.weights[j], 0);
    expect(sum).toBeCloseTo(1115, 6);
    const again = bucketMeans(xs, ones(5), 1, 2, 3);
    expect(again.updates.map((u) => toDense(u)[0])).toEqual(b.updates.map((u) => toDense(u)[0]));
    // one bucket holding everything = the mean, whatever the robust rule
    close(aggregate('median', xs, ones(5), { bucket: 5 }), [223]);
  });

  it('refuses bad calls with an AggregationError naming the problem', () => {
    expect(() => aggregate('mean', [], [])).toThrow(/no updates/);
    expect(() => aggregate('mean', [dense(1)], [1, 2])).toThrow(/1 updates but 2 weights/);
    expect(() => aggregate('mean', [dense(1), dense(1, 2)], [1, 1])).toThrow(/update 1 has 2 values/);
    expect(() => aggregate('mean', [dense(1)], [NaN])).toThrow(/weight 0 is NaN/);
    expect(() => aggregate('mean', [dense(1)], [0])).toThrow(/sum to 0/);
    expect(() => aggregate('no-such-rule' as AggregatorName, [dense(1)], [1])).toThrow(AggregationError);
    expect(() => aggregate('trimmed-mean', [dense(1)], [1], { trim: 0.5 })).toThrow(/trim/);
    expect(() => aggregate('centered-clip', [dense(1)], [1], { center: new Float32Array(2) })).toThrow(/center has 2/);
  });
});

describe('aggregators on compressed inputs (golden vectors through the codec)', () => {
  // values chosen so that int8 and 8-bit top-k are exact: each block's max is 127, so the scale is 1
  const s1 = decodeUpdate(encodeUpdate(Float32Array.from([2, 0, 127, 0]), { kind: 'topk', fraction: 0.5, bits: 8 }), 4);
  const d1 = decodeUpdate(encodeUpdate(Float32Array.from([127, 1, -3, 0]), { kind: 'int8', block: 4 }), 4);
  const s2 = decodeUpdate(encodeUpdate(Float32Array.from([0, 0, -127, 5]), { kind: 'topk', fraction: 0.5, bits: 8 }), 4);
  const xs = [s1, d1, s2];

  it('the inputs really are one dense and two sparse updates', () => {
    expect([s1.kind, d1.kind, s2.kind]).toEqual(['sparse', 'dense', 'sparse']);
    if (s1.kind === 'sparse') expect(Array.from(s1.indices)).toEqual([0, 2]);
  });
  it('mean counts absent coordinates as zero', () => {
    close(aggregate('mean', xs, ones(3)), [43, 1 / 3, -1, 5 / 3], 5);
    close(aggregate('mean', xs, [1, 0, 1]), [1, 0, 0, 2.5], 5);
  });
  it('median and trimmed mean per coordinate, absent = 0', () => {
    close(aggregate('median', xs, ones(3)), [2, 0, -3, 0]);
    close(aggregate('trimmed-mean', xs, ones(3), { trim: 0.34 }), [2, 0, -3, 0]);
  });
  it('centered clipping: each unit-clipped around 0, then averaged', () => {
    const got = aggregate('centered-clip', xs, ones(3), { center: new Float32Array(4), tau: 1, iterations: 1, bucket: 1 });
    close(got, [0.33847874, 0.00262386, -0.00765487, 0.0131132]);
  });
  it('4-bit top-k and int8 with rounding stay within the codec bound of the exact answer', () => {
    const a = Float32Array.from([0.3, -0.01, 0.02, 0.7, 0, -0.5]);
    const b = Float32Array.from([0.1, 0.2, -0.3, 0.4, 0.5, 0.6]);
    const ca = decodeUpdate(encodeUpdate(a, { kind: 'topk', fraction: 0.5, bits: 4 }), 6);
    const cb = decodeUpdate(encodeUpdate(b, { kind: 'int8', block: 3 }), 6);
    // top-k keeps 0.7, -0.5, 0.3 (step 0.1, error ≤ 0.05); int8 error ≤ 0.6/254 per value
    const got = aggregate('mean', [ca, cb], [1, 1]);
    const want = [0.2, 0.1, -0.15, 0.55, 0.25, 0.05];
    want.forEach((w, i) => expect(Math.abs(got[i] - w)).toBeLessThanOrEqual((0.05 + 0.6 / 254) / 2 + 0.01 / 2 + 1e-6));
  });
});

describe('default bucket size follows the assumed attacker share', () => {
  it('s = ⌊0.25/δ⌋: no bucketing at δ = 0.2, pairs at δ = 0.1', () => {
    // 0, 0, 0, 10: at s = 1 centered clipping keeps the outlier out; one bucket of 4 would give 2.5
    const xs = [dense(0), dense(0), dense(0), dense(10)];
    close(aggregate('centered-clip', xs, ones(4)), [0]);
    close(aggregate('centered-clip', xs, ones(4), { byzantineFraction: 0.0625 }), [2.5]); // s = 4
    expect(() => aggregate('centered-clip', xs, ones(4), { byzantineFraction: 0.5 })).toThrow(/byzantineFraction/);
  });
});
