// The rules and pre-aggregators added after mean/median/trimmed-mean/centered-clip, each on ByzFL's
// documentation input x = [[1,2,3],[4,5,6],[7,8,9]] (byzfl.readthedocs.io, "Aggregators" and
// "Pre-aggregators" pages) with f = 1, answers worked out by hand below from ByzFL's definitions.
import { describe, expect, it } from 'vitest';
import { aggregate, aggregatorNames, AggregationError, preAggregatorNames } from '../../shared/aggregate/index.ts';
import { arcClip, staticClip } from '../../shared/aggregate/clipping.ts';
import { krumScores } from '../../shared/aggregate/krum.ts';
import { nnm } from '../../shared/aggregate/nnm.ts';
import type { Update } from '../../shared/codec/index.ts';

const dense = (...v: number[]): Update => ({ kind: 'dense', values: Float32Array.from(v) });
const ones = (n: number) => Array.from({ length: n }, () => 1);
const close = (got: Float32Array, want: number[], digits = 5) => {
  expect(got.length).toBe(want.length);
  want.forEach((w, i) => expect(got[i]).toBeCloseTo(w, digits));
};
const byzfl = [dense(1, 2, 3), dense(4, 5, 6), dense(7, 8, 9)];
const vecs = byzfl.map((u) => u.values as Float32Array);
const F1 = { byzantineFraction: 0.34 }; // ⌊0.34 · 3⌋ = 1

describe('registry', () => {
  it('lists every rule and pre-aggregator once, and refuses unknown names', () => {
    expect(aggregatorNames).toEqual(['centered-clip', 'trimmed-mean', 'median', 'mean', 'geometric-median', 'krum', 'multi-krum']);
    expect(preAggregatorNames).toEqual(['nnm', 'arc', 'clipping']);
    expect(() => aggregate('mean', byzfl, ones(3), { preAggregators: ['bogus'] })).toThrow(/unknown pre-aggregator "bogus"/);
    expect(() => aggregate('geometric-median', byzfl, ones(3), { nu: 0 })).toThrow(AggregationError);
    expect(() => aggregate('mean', byzfl, ones(3), { preAggregators: ['clipping'], clip: -1 })).toThrow(/clip must be/);
  });
});

describe('Krum and Multi-Krum (ByzFL Krum(f=1), MultiKrum(f=1))', () => {
  it('scores are the squared distance to the n − f − 1 = 1 nearest other vector', () => {
    // ‖x₁ − x₂‖² = ‖x₂ − x₃‖² = 3 · 3² = 27, ‖x₁ − x₃‖² = 3 · 6² = 108
    expect(Array.from(krumScores(vecs, 1))).toEqual([27, 27, 27]);
    expect(Array.from(krumScores(vecs, 0))).toEqual([27 + 108, 27 + 27, 27 + 108]);
  });
  it('Krum: all tie at 27 → the first (numpy argmin) = [1, 2, 3]; with f = 0 the middle one wins', () => {
    close(aggregate('krum', byzfl, ones(3), F1), [1, 2, 3]);
    close(aggregate('krum', byzfl, ones(3), { byzantineFraction: 0 }), [4, 5, 6]);
  });
  it('Multi-Krum averages the n − f = 2 best: x₁, x₂ → [2.5, 3.5, 4.5]', () => {
    close(aggregate('multi-krum', byzfl, ones(3), F1), [2.5, 3.5, 4.5]);
  });
  it('Krum ignores a far outlier among a cluster', () => {
    const xs = [dense(0, 0), dense(0.1, 0), dense(0, 0.1), dense(0.1, 0.1), dense(50, -50)];
    const got = aggregate('krum', xs, ones(5)); // f = ⌊0.2 · 5⌋ = 1
    expect(Math.hypot(got[0], got[1])).toBeLessThan(0.2);
    close(aggregate('multi-krum', xs, ones(5)), [0.05, 0.05]);
  });
});

describe('geometric median (ByzFL GeometricMedian, smoothed Weiszfeld from 0)', () => {
  it('one iteration from z = 0 is Σ xᵢ/‖xᵢ‖ / Σ 1/‖xᵢ‖', () => {
    const r = [Math.sqrt(14), Math.sqrt(77), Math.sqrt(194)];
    const b = r.map((v) => 1 / v), sb = b[0] + b[1] + b[2];
    const want = [0, 1, 2].map((i) => (b[0] * (1 + i) + b[1] * (4 + i) + b[2] * (7 + i)) / sb);
    close(aggregate('geometric-median', byzfl, ones(3), { nu: 0.1, iterations: 1 }), want);
  });
  it('converges to the middle of a symmetric set and stays with the majority under an outlier', () => {
    close(aggregate('geometric-median', byzfl, ones(3), { iterations: 50 }), [4, 5, 6], 3);
    // four points at the corners of a unit square plus one far away: the median stays inside the square
    const got = aggregate('geometric-median', [dense(0, 0), dense(1, 0), dense(0, 1), dense(1, 1), dense(1000, 1000)], ones(5), { iterations: 50 });
    expect(got[0]).toBeGreaterThan(0.4); expect(got[0]).toBeLessThan(1);
    expect(got[1]).toBeGreaterThan(0.4); expect(got[1]).toBeLessThan(1);
  });
  it('weights act as αᵢ: a weight-0 vector is ignored', () => {
    close(aggregate('geometric-median', [dense(1, 1), dense(1e6, 1e6)], [1, 0]), [1, 1]);
  });
});

describe('pre-aggregators', () => {
  it('NNM(f=1): each vector → mean of its n − f = 2 nearest, itself included', () => {
    // x₂ is 27 from both x₁ and x₃: the tie goes to x₁ (stable argsort)
    const got = nnm(vecs, 1);
    close(got[0], [2.5, 3.5, 4.5]); close(got[1], [2.5, 3.5, 4.5]); close(got[2], [5.5, 6.5, 7.5]);
  });
  it('ARC(f=1): ⌊2 · (1/3) · 2⌋ = 1 largest vector clipped to the next largest norm', () => {
    const got = arcClip(vecs, 1);
    const k = Math.sqrt(77) / Math.sqrt(194); // ‖x₂‖ / ‖x₃‖
    close(got[0], [1, 2, 3]); close(got[1], [4, 5, 6]); close(got[2], [7 * k, 8 * k, 9 * k]);
    expect(arcClip(vecs, 0)).toEqual(vecs); // f = 0 clips nothing
  });
  it('Clipping(c=2): each vector scaled to norm ≤ 2', () => {
    const got = staticClip(vecs, 2);
    got.forEach((g, j) => close(g, Array.from(vecs[j], (v) => (2 * v) / Math.hypot(...vecs[j]))));
    expect(staticClip([Float32Array.from([0.3, 0.4])], 2)[0]).toEqual(Float32Array.from([0.3, 0.4]));
  });
  it('compose with any rule, in the order given: NNM then mean, NNM then Multi-Krum, ARC then mean', () => {
    // NNM rows [2.5,3.5,4.5], [2.5,3.5,4.5], [5.5,6.5,7.5] → mean [3.5, 4.5, 5.5]
    close(aggregate('mean', byzfl, ones(3), { ...F1, preAggregators: ['nnm'] }), [3.5, 4.5, 5.5]);
    // Multi-Krum on the NNM rows: rows 1 and 2 coincide (score 0) → their mean
    close(aggregate('multi-krum', byzfl, ones(3), { ...F1, preAggregators: ['nnm'] }), [2.5, 3.5, 4.5]);
    const k = Math.sqrt(77) / Math.sqrt(194);
    close(aggregate('mean', byzfl, ones(3), { ...F1, preAggregators: ['arc'] }), [0, 1, 2].map((i) => (1 + i + 4 + i + k * (7 + i)) / 3));
    // the order matters: clipping to 2 then NNM differs from NNM then clipping
    const a = aggregate('mean', byzfl, ones(3), { ...F1, preAggregators: ['clipping', 'nnm'], clip: 2 });
    const b = aggregate('mean', byzfl, ones(3), { ...F1, preAggregators: ['nnm', 'clipping'], clip: 2 });
    expect(Math.abs(a[0] - b[0])).toBeGreaterThan(1e-3);
  });
  it('NNM before centered clipping keeps a coordinated attack from moving the aggregate far', () => {
    // 8 honest near 1, 2 attackers at −5: NNM with f = 2 mixes the attackers with each other only
    const xs = [...Array.from({ length: 8 }, (_, i) => dense(1 + 0.01 * i)), dense(-5), dense(-5.01)];
    const got = aggregate('centered-clip', xs, ones(10), { preAggregators: ['nnm'] });
    expect(Math.abs(got[0] - 1.035)).toBeLessThan(0.5);
    expect(aggregate('mean', xs, ones(10))[0]).toBeLessThan(0);
  });
});

describe('job spec', () => {
  it('accepts every registry name and pre-aggregator list, and names the bad field otherwise', async () => {
    const { checkSubmission, resolveHyperparameters } = await import('../../shared/jobs/spec.ts');
    const job = (h: unknown) => ({ name: 'x', model: { kind: 'mlp', hidden: [4] }, dataset: { format: 'labelled' }, hyperparameters: h });
    for (const aggregator of aggregatorNames) expect(() => checkSubmission(job({ aggregator, preAggregators: ['nnm', 'arc'] }))).not.toThrow();
    expect(resolveHyperparameters(checkSubmission(job({ aggregator: 'krum', preAggregators: ['nnm'] }))).preAggregators).toEqual(['nnm']);
    expect(() => checkSubmission(job({ preAggregators: ['nnm', 'bucketing'] }))).toThrow(/hyperparameters\.preAggregators\.1: must be one of "nnm", "arc", "clipping"/);
    expect(() => checkSubmission(job({ aggregator: 'bulyan' }))).toThrow(/hyperparameters\.aggregator: must be one of "centered-clip"/);
  });
});

describe('f rounds up for Krum, NNM and ARC', () => {
  it('⌈0.2 · 4⌉ = 1: NNM at K = 4 is not the plain mean, and one outlier is kept out', () => {
    const xs = [dense(1), dense(1.1), dense(0.9), dense(-50)];
    const got = aggregate('centered-clip', xs, ones(4), { preAggregators: ['nnm'] });
    expect(got[0]).toBeGreaterThan(0.5);
    expect(aggregate('krum', xs, ones(4))[0]).toBeCloseTo(1, 5);
    // ⌈0.2 · 15⌉ is 3, not 4 (0.2 · 15 is 3.0000000000000004 in floating point)
    const many = Array.from({ length: 15 }, (_, i) => dense(i));
    // f = 3: the n − f = 12 best of 0…14 are the middle ones, 1…12 (1 and 13 tie; the lower index wins): mean 6.5.
    // f = 4 would keep 11 of them, 2…12: mean 7.
    expect(aggregate('multi-krum', many, ones(15))[0]).toBeCloseTo(6.5, 5);
  });
});
