// Weighted mean, reading sparse updates in place (absent coordinates add zero).
import type { Update } from '../codec/index.ts';

export function weightedMean(updates: Update[], weights: number[], length: number): Float32Array {
  const acc = new Float64Array(length);
  let total = 0;
  updates.forEach((u, j) => {
    const w = weights[j];
    total += w;
    if (u.kind === 'dense') for (let i = 0; i < length; i++) acc[i] += w * u.values[i];
    else for (let t = 0; t < u.indices.length; t++) acc[u.indices[t]] += w * u.values[t];
  });
  const out = new Float32Array(length);
  for (let i = 0; i < length; i++) out[i] = acc[i] / total;
  return out;
}
