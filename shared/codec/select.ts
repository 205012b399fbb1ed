// O(n) top-k selection by magnitude: a quickselect on |x| finds the k-th largest magnitude, then one
// ordered scan collects the indices, so they come out ascending with no sort.

/** Ascending indices of the k entries of x with the largest |x| (ties broken by lower index first).
 * Entries equal to zero are never selected, so fewer than k come back when x has fewer non-zeros. */
export function topKIndices(x: Float32Array, k: number): Uint32Array {
  const n = x.length;
  if (k <= 0 || n === 0) return new Uint32Array(0);
  if (k >= n) k = n;
  const mag = new Float32Array(n);
  for (let i = 0; i < n; i++) mag[i] = Math.abs(x[i]);
  // threshold t = the k-th largest magnitude = the (n-k)-th smallest (0-based)
  const t = quickselect(mag, n - k);
  let above = 0;
  for (let i = 0; i < n; i++) if (Math.abs(x[i]) > t) above++;
  let ties = t > 0 ? k - above : 0;
  const out = new Uint32Array(above + ties);
  let j = 0;
  for (let i = 0; i < n; i++) {
    const a = Math.abs(x[i]);
    if (a > t) out[j++] = i;
    else if (a === t && ties > 0) { out[j++] = i; ties--; }
  }
  return out;
}

/** Rearranges a in place and returns its k-th smallest value (0-based). Hoare partition with a
 * median-of-three pivot: expected O(n). */
function quickselect(a: Float32Array, k: number): number {
  let lo = 0, hi = a.length - 1;
  while (hi > lo) {
    const mid = (lo + hi) >>> 1;
    // median of three, so sorted or constant input does not degrade to O(n²)
    if (a[mid] < a[lo]) swap(a, mid, lo);
    if (a[hi] < a[lo]) swap(a, hi, lo);
    if (a[hi] < a[mid]) swap(a, hi, mid);
    const pivot = a[mid];
    let i = lo, j = hi;
    while (i <= j) {
      while (a[i] < pivot) i++;
      while (a[j] > pivot) j--;
      if (i <= j) { swap(a, i, j); i++; j--; }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else return a[k];
  }
  return a[k];
}

function swap(a: Float32Array, i: number, j: number): void {
  const t = a[i]; a[i] = a[j]; a[j] = t;
}
