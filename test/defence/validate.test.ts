import { describe, expect, it } from 'vitest';
import { decodeUpdate, encodeUpdate, type Update } from '../../shared/codec/index.ts';
import { normBoundFrom, validateUpdate } from '../../server/defence/validate.ts';

const dense = (...v: number[]): Update => ({ kind: 'dense', values: Float32Array.from(v) });

describe('validateUpdate', () => {
  it('accepts a well-formed update and reports its L2 norm', () => {
    expect(validateUpdate(dense(3, 4), { paramCount: 2 })).toEqual({ ok: true, norm: 5 });
    const sparse = decodeUpdate(encodeUpdate(Float32Array.from([0, 0, 6, 8]), { kind: 'topk', fraction: 0.5, bits: 8 }));
    const r = validateUpdate(sparse, { paramCount: 4, normBound: 11 });
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.norm).toBeCloseTo(10, 1);
  });
  it('refuses each kind of bad update with its code and a message naming the problem', () => {
    const cases: [Update, number, number | undefined, string, RegExp][] = [
      [dense(1, 2), 3, undefined, 'WRONG_LENGTH', /2 values but the model has 3/],
      [dense(1, NaN), 2, undefined, 'NON_FINITE', /value 1 is NaN/],
      [dense(Infinity, 0), 2, undefined, 'NON_FINITE', /Infinity/],
      [dense(0, 0, 0), 3, undefined, 'EMPTY_UPDATE', /all zeros/],
      [dense(30, 40), 2, 10, 'NORM_TOO_LARGE', /norm 50.00 exceeds this round's bound 10.00/],
      [{ kind: 'sparse', length: 4, indices: Uint32Array.from([2, 1]), values: Float32Array.from([1, 1]) }, 4, undefined, 'BAD_INDICES', /ascending/],
      [{ kind: 'sparse', length: 4, indices: Uint32Array.from([1, 1]), values: Float32Array.from([1, 1]) }, 4, undefined, 'BAD_INDICES', /ascending/],
      [{ kind: 'sparse', length: 4, indices: Uint32Array.from([1, 4]), values: Float32Array.from([1, 1]) }, 4, undefined, 'BAD_INDICES', /out of range/],
      [{ kind: 'sparse', length: 4, indices: Uint32Array.from([1]), values: Float32Array.from([1, 1]) }, 4, undefined, 'BAD_INDICES', /1 indices but 2 values/],
    ];
    for (const [u, paramCount, normBound, code, message] of cases) {
      const r = validateUpdate(u, { paramCount, normBound });
      expect(r.ok).toBe(false);
      if (!r.ok) {
        expect(r.code).toBe(code);
        expect(r.message).toMatch(message);
      }
    }
  });
});

describe('normBoundFrom', () => {
  it('is 3 × the median of the round\'s norms, once at least 3 are known', () => {
    expect(normBoundFrom([1, 2])).toBeUndefined();
    expect(normBoundFrom([1, 2, 100])).toBe(6);
    expect(normBoundFrom([1, 2, 3, 100])).toBe(7.5);
    expect(normBoundFrom([4, 1, 2, 3], { factor: 2 })).toBe(5);
    // non-finite or zero norms are ignored rather than poisoning the bound
    expect(normBoundFrom([NaN, Infinity, 0, 2, 2, 2])).toBe(6);
    expect(normBoundFrom([5], { minCount: 1 })).toBe(15);
  });
  it('a minority of huge updates cannot raise it', () => {
    const honest = Array.from({ length: 16 }, (_, i) => 1 + i * 0.01);
    const bound = normBoundFrom([...honest, 1e6, 1e6, 1e6, 1e6])!;
    expect(bound).toBeLessThan(3.5);
  });
});
