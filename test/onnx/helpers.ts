import { expect } from 'vitest';
import { paramCount, paramLayout, type ModelConfig } from '../../shared/models/config.ts';
import { rng } from '../../shared/util/rng.ts';

/** Params of trained-looking scale (init std is small enough to hide layout mistakes). */
export function spread(config: ModelConfig, seed: number): Float32Array {
  const r = rng(seed);
  const p = new Float32Array(paramCount(config));
  for (const s of paramLayout(config)) {
    for (let i = 0; i < s.size; i++) p[s.offset + i] = s.init.kind === 'ones' ? 1 + 0.2 * r.normal() : 0.3 * r.normal();
  }
  return p;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}
