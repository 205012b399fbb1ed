// Pairwise squared L2 distances and norms, shared by the vector rules (Krum, NNM, ARC, clipping).
export function sqDist(a: Float32Array, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) { const z = a[i] - b[i]; s += z * z; }
  return s;
}

export function l2(x: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i] * x[i];
  return Math.sqrt(s);
}

/** n × n matrix of squared distances (symmetric, zero diagonal). */
export function sqDistMatrix(xs: Float32Array[]): Float64Array[] {
  const n = xs.length;
  const m = Array.from({ length: n }, () => new Float64Array(n));
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) m[i][j] = m[j][i] = sqDist(xs[i], xs[j]);
  return m;
}

/** Indices 0..n-1 ordered by key ascending; ties keep index order (numpy's stable argsort, as ByzFL sorts). */
export function argsort(keys: ArrayLike<number>): number[] {
  return Array.from({ length: keys.length }, (_, i) => i).sort((a, b) => keys[a] - keys[b] || a - b);
}

export function scaled(x: Float32Array, k: number): Float32Array {
  return k === 1 ? x : x.map((v) => v * k);
}
