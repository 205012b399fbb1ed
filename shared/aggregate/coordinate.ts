// Coordinate-wise rules: each coordinate is aggregated on its own over the n updates' values there.
// Each column is sorted (O(n log n), stable: equal values keep input order) into scratch buffers, so a
// round of many bucket means costs no more than n log n per coordinate (insertion was O(n²)).

/** Columns up to this long are insertion-sorted. */
const SMALL = 32;

/** Calls f(i, vals, ws, n) with coordinate i's values sorted ascending and their weights alongside. */
function eachSortedColumn(
  cols: Float32Array[], weights: number[], f: (vals: Float64Array, ws: Float64Array) => number, into?: Float32Array,
): Float32Array {
  const n = cols.length, d = cols[0].length;
  const vals = new Float64Array(n), ws = new Float64Array(n), raw = new Float64Array(n);
  const order = new Uint32Array(n);
  const byValue = (a: number, b: number) => raw[a] - raw[b] || a - b;
  const out = into ?? new Float32Array(d);
  for (let i = 0; i < d; i++) {
    for (let j = 0; j < n; j++) { raw[j] = cols[j][i]; order[j] = j; }
    if (n <= SMALL) {
      // insertion sort, stable like byValue's index tie-break: no comparator call per pair (the
      // common round of a few updates or bucket means sorts millions of such short columns)
      for (let j = 1; j < n; j++) {
        const o = order[j], x = raw[o];
        let k = j - 1;
        while (k >= 0 && raw[order[k]] > x) { order[k + 1] = order[k]; k--; }
        order[k + 1] = o;
      }
    } else order.sort(byValue);
    for (let j = 0; j < n; j++) { const k = order[j]; vals[j] = raw[k]; ws[j] = weights[k]; }
    out[i] = f(vals, ws);
  }
  return out;
}

/** Weighted median per coordinate: the value where cumulative weight reaches half the total; when it
 * lands exactly on half between two values, their midpoint (so equal weights give the usual median).
 * Rounds of a few updates (a 124M round of 4: 124M columns) take a path without the general sort:
 * equal weights of 1 to 4 inputs by min/max networks, other short columns by an insertion sort of values
 * and weights together; every path returns the same values (midpoints computed in float64, as here). */
export function coordinateMedian(cols: Float32Array[], weights: number[], into?: Float32Array): Float32Array {
  const n = cols.length, d = cols[0].length;
  const total = weights.reduce((a, b) => a + b, 0), half = total / 2;
  const eps = total * 1e-12;
  const out = into ?? new Float32Array(d);
  if (n <= 4 && weights.every((w) => w === weights[0] && w > 0)) return equalMedianSmall(cols, out);
  if (n <= SMALL) return weightedMedianShort(cols, weights, half, eps, out);
  return eachSortedColumn(cols, weights, (vals, ws) => weightedMedianOf(vals, ws, vals.length, half, eps), out);
}

/** The weighted median of n sorted values with their weights (see coordinateMedian). */
function weightedMedianOf(vals: Float64Array, ws: Float64Array, n: number, half: number, eps: number): number {
  let acc = 0;
  for (let j = 0; j < n; j++) {
    acc += ws[j];
    if (acc > half + eps) return vals[j];
    if (acc >= half - eps) {
      // exactly half: average with the next value that carries weight
      let k = j + 1;
      while (k < n && ws[k] === 0) k++;
      return k < n ? (vals[j] + vals[k]) / 2 : vals[j];
    }
  }
  return vals[n - 1];
}

/** Columns of 1–4 equally weighted values: the middle one, or the midpoint of the middle two. */
function equalMedianSmall(cols: Float32Array[], out: Float32Array): Float32Array {
  const d = out.length, [a, b, c, e] = cols;
  if (cols.length === 1) out.set(a);
  else if (cols.length === 2) for (let i = 0; i < d; i++) out[i] = (a[i] + b[i]) / 2;
  else if (cols.length === 3) {
    for (let i = 0; i < d; i++) {
      const x = a[i], y = b[i], z = c[i];
      const lo = x < y ? x : y, hi = x < y ? y : x;
      out[i] = z < lo ? lo : z > hi ? hi : z;
    }
  } else {
    for (let i = 0; i < d; i++) {
      const w = a[i], x = b[i], y = c[i], z = e[i];
      const l1 = w < x ? w : x, h1 = w < x ? x : w, l2 = y < z ? y : z, h2 = y < z ? z : y;
      out[i] = ((l1 > l2 ? l1 : l2) + (h1 < h2 ? h1 : h2)) / 2;
    }
  }
  return out;
}

/** Up to SMALL values a column: insertion-sorted with their weights (stable), no index array or callback. */
function weightedMedianShort(cols: Float32Array[], weights: number[], half: number, eps: number, out: Float32Array): Float32Array {
  const n = cols.length, d = out.length;
  const v = new Float64Array(n), w = new Float64Array(n), wt = Float64Array.from(weights);
  for (let i = 0; i < d; i++) {
    for (let j = 0; j < n; j++) {
      const x = cols[j][i];
      let k = j - 1;
      while (k >= 0 && v[k] > x) { v[k + 1] = v[k]; w[k + 1] = w[k]; k--; }
      v[k + 1] = x; w[k + 1] = wt[j];
    }
    out[i] = weightedMedianOf(v, w, n, half, eps);
  }
  return out;
}

/** Per coordinate: drop the f smallest and f largest values (by count, as ByzFL's TrMean does), then
 * the weighted mean of the rest. */
export function trimmedMean(cols: Float32Array[], weights: number[], f: number): Float32Array {
  const n = cols.length;
  return eachSortedColumn(cols, weights, (vals, ws) => {
    let s = 0, w = 0;
    for (let j = f; j < n - f; j++) { s += ws[j] * vals[j]; w += ws[j]; }
    if (w > 0) return s / w;
    // every kept value has zero weight: fall back to their plain mean
    let p = 0;
    for (let j = f; j < n - f; j++) p += vals[j];
    return p / (n - 2 * f);
  });
}
