// The coordinate median's short-column paths and centered clipping's Gram-matrix distances against
// plain references written the way the papers state them: the fast paths must give the same answers
// (the median bit for bit, centered clipping to float32's last places) on random columns with ties.
import { describe, expect, it } from 'vitest';
import { centeredClip } from '../../shared/aggregate/centered-clip.ts';
import { coordinateMedian } from '../../shared/aggregate/coordinate.ts';
import { rng } from '../../shared/util/rng.ts';

/** Weighted median of one column: sort (stable), walk to half the weight, midpoint on an exact half. */
function referenceMedian(vals: number[], ws: number[]): number {
  const order = vals.map((_, j) => j).sort((a, b) => vals[a] - vals[b] || a - b);
  const total = ws.reduce((a, b) => a + b, 0), half = total / 2, eps = total * 1e-12;
  let acc = 0;
  for (let t = 0; t < order.length; t++) {
    acc += ws[order[t]];
    if (acc > half + eps) return vals[order[t]];
    if (acc >= half - eps) {
      let k = t + 1;
      while (k < order.length && ws[order[k]] === 0) k++;
      return k < order.length ? (vals[order[t]] + vals[order[k]]) / 2 : vals[order[t]];
    }
  }
  return vals[order[order.length - 1]];
}

/** Centered clipping as iterated in the paper, in float64: v ← v + Σ wᵢ clip_τ(xᵢ − v) / Σ w. */
function referenceClip(xs: Float32Array[], ws: number[], start: Float32Array, iterations: number): Float64Array {
  const d = start.length, total = ws.reduce((a, b) => a + b, 0);
  const v = Float64Array.from(start);
  const dist = () => xs.map((x) => Math.sqrt(x.reduce((s, xi, i) => s + (xi - v[i]) ** 2, 0)));
  const d0 = dist().sort((a, b) => a - b);
  const tau = d0.length % 2 ? d0[d0.length >> 1] : (d0[d0.length / 2 - 1] + d0[d0.length / 2]) / 2;
  for (let it = 0; it < iterations; it++) {
    const dj = dist();
    const step = new Float64Array(d);
    xs.forEach((x, j) => {
      const k = (ws[j] / total) * (dj[j] > tau ? tau / dj[j] : 1);
      for (let i = 0; i < d; i++) step[i] += k * (x[i] - v[i]);
    });
    for (let i = 0; i < d; i++) v[i] += step[i];
  }
  return v;
}

const column = (r: ReturnType<typeof rng>, d: number) => Float32Array.from({ length: d }, () => {
  // a third of the values from a small set, so columns hold ties
  const u = r.next();
  return u < 0.33 ? Math.floor(r.next() * 3) - 1 : Math.fround(r.normal() * 2);
});

describe('coordinate median: the short-column paths', () => {
  it('equal weights (1–4 inputs), unequal weights and zero weights match the reference on every coordinate', () => {
    const r = rng(7);
    const d = 500;
    for (let n = 1; n <= 7; n++) {
      const cols = Array.from({ length: n }, () => column(r, d));
      const weightings = [
        Array.from({ length: n }, () => 1),
        Array.from({ length: n }, () => 2.5),
        Array.from({ length: n }, () => 0.1 + r.next() * 3),
        Array.from({ length: n }, (_, j) => (j === 0 && n > 1 ? 0 : 1 + Math.floor(r.next() * 3))),
      ];
      for (const ws of weightings) {
        const got = coordinateMedian(cols, ws);
        for (let i = 0; i < d; i++) {
          const want = Math.fround(referenceMedian(cols.map((c) => c[i]), ws));
          if (got[i] !== want) expect({ n, ws, i, got: got[i] }).toEqual({ n, ws, i, got: want });
        }
      }
    }
  });
  it('a long column (more than 32 inputs) still takes the sorting path and matches', () => {
    const r = rng(8);
    const cols = Array.from({ length: 40 }, () => column(r, 50));
    const ws = cols.map(() => 0.5 + r.next());
    const got = coordinateMedian(cols, ws);
    for (let i = 0; i < 50; i++) expect(got[i]).toBe(Math.fround(referenceMedian(cols.map((c) => c[i]), ws)));
  });
  it('writes into the array it is given', () => {
    const into = new Float32Array(2);
    const got = coordinateMedian([Float32Array.from([1, 5]), Float32Array.from([3, 1])], [1, 1], into);
    expect(got).toBe(into);
    expect(Array.from(into)).toEqual([2, 3]);
  });
});

describe('centered clipping: Gram-matrix distances (few inputs) and passes (many) against the iterated form', () => {
  for (const n of [2, 4, 8, 9, 12]) {
    it(`${n} inputs, one far outlier, median start`, () => {
      const r = rng(100 + n);
      const d = 3000;
      const xs = Array.from({ length: n }, (_, j) => Float32Array.from({ length: d }, () => Math.fround(r.normal() * 0.01 + (j === n - 1 ? 5 : 0))));
      const ws = xs.map(() => 0.5 + r.next());
      const start = coordinateMedian(xs, ws);
      const want = referenceClip(xs, ws, start, 3);
      const got = centeredClip(xs, ws, start, { iterations: 3 });
      let worst = 0, scale = 0;
      for (let i = 0; i < d; i++) { worst = Math.max(worst, Math.abs(got[i] - want[i])); scale = Math.max(scale, Math.abs(want[i])); }
      expect(worst).toBeLessThanOrEqual(scale * 1e-6);
      // with a majority of honest inputs, the outlier (at 5) moved the result by at most its clipped share
      let mean = 0;
      for (let i = 0; i < d; i++) mean += got[i] / d;
      if (n > 2) expect(Math.abs(mean)).toBeLessThan(1);
    });
  }
  it('identical inputs give the start back', () => {
    const x = Float32Array.from({ length: 100 }, (_, i) => Math.fround(Math.sin(i)));
    const got = centeredClip([x, x.slice(), x.slice()], [1, 1, 1], x.slice(), { iterations: 3 });
    expect(Array.from(got)).toEqual(Array.from(x));
  });
});
