// Coordinate-wise rules: each coordinate is aggregated on its own over the n updates' values there.
// Each column is sorted (O(n log n), stable: equal values keep input order) into scratch buffers, so a
// round of many bucket means costs no more than n log n per coordinate (insertion was O(n²)).

/** Columns up to this long are insertion-sorted. */
const SMALL = 32;

/** Calls f(i, vals, ws, n) with coordinate i's values sorted ascending and their weights alongside. */
function eachSortedColumn(
  cols: Float32Array[], weights: number[], f: (vals: Float64Array, ws: Float64Array) => number,
): Float32Array {
  const n = cols.length, d = cols[0].length;
  const vals = new Float64Array(n), ws = new Float64Array(n), raw = new Float64Array(n);
  const order = new Uint32Array(n);
  const byValue = (a: number, b: number) => raw[a] - raw[b] || a - b;
  const out = new Float32Array(d);
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
 * lands exactly on half between two values, their midpoint (so equal weights give the usual median). */
export function coordinateMedian(cols: Float32Array[], weights: number[]): Float32Array {
  const total = weights.reduce((a, b) => a + b, 0), half = total / 2;
  const eps = total * 1e-12;
  return eachSortedColumn(cols, weights, (vals, ws) => {
    let acc = 0;
    for (let j = 0; j < vals.length; j++) {
      acc += ws[j];
      if (acc > half + eps) return vals[j];
      if (acc >= half - eps) {
        // exactly half: average with the next value that carries weight
        let k = j + 1;
        while (k < vals.length && ws[k] === 0) k++;
        return k < vals.length ? (vals[j] + vals[k]) / 2 : vals[j];
      }
    }
    return vals[vals.length - 1];
  });
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
