// The update size the submit form shows is the size the codec writes: exact for fp32 and int8, within
// a few percent for top-k (its index varints depend on where the kept values fall).
import { expect, test } from 'vitest';
import { encodedUpdateBytes, encodeUpdate } from '../../shared/codec/index.ts';
import { rng } from '../../shared/util/rng.ts';

const delta = (n: number) => { const r = rng(7); return Float32Array.from({ length: n }, () => r.normal()); };

test('fp32 and int8 sizes are exact, top-k within 5 %', () => {
  for (const n of [1, 255, 256, 257, 10_000, 100_003]) {
    const d = delta(n);
    expect(encodedUpdateBytes(n, { kind: 'fp32' })).toBe(encodeUpdate(d, { kind: 'fp32' }).length);
    for (const block of [1, 64, 256, 4096]) expect(encodedUpdateBytes(n, { kind: 'int8', block })).toBe(encodeUpdate(d, { kind: 'int8', block }).length);
  }
  for (const [fraction, bits] of [[0.01, 8], [0.1, 4], [0.001, 8]] as const) {
    const n = 200_000, real = encodeUpdate(delta(n), { kind: 'topk', fraction, bits }).length;
    expect(Math.abs(encodedUpdateBytes(n, { kind: 'topk', fraction, bits }) - real) / real).toBeLessThan(0.05);
  }
});
