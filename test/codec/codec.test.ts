import { describe, expect, it } from 'vitest';
import {
  CodecError, decodeUpdate, denseFp32Bytes, encodeUpdate, encodedByteBound, encodedNorm, readHeader, toDense, updateNorm,
  type Compression,
} from '../../shared/codec/index.ts';
import { topKIndices } from '../../shared/codec/select.ts';
import { rng } from '../../shared/util/rng.ts';

function gaussian(n: number, seed: number, scale = 1e-3): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => r.normal() * scale);
}

const M = 1_000_000;

describe('update codec: byte counts on a 1M-parameter update', () => {
  const x = gaussian(M, 1);
  it('int8 (block 256) is at least 3.9× smaller than dense fp32', () => {
    const bytes = encodeUpdate(x, { kind: 'int8', block: 256 });
    expect(bytes.length).toBe(encodedByteBound(M, { kind: 'int8', block: 256 }));
    expect(denseFp32Bytes(M) / bytes.length).toBeGreaterThanOrEqual(3.9);
  });
  it('top-k 1 % is at least 50× smaller than dense fp32, with 8-bit and with 4-bit values', () => {
    for (const bits of [8, 4] as const) {
      const c: Compression = { kind: 'topk', fraction: 0.01, bits };
      const bytes = encodeUpdate(x, c);
      expect(bytes.length).toBeLessThanOrEqual(encodedByteBound(M, c));
      expect(denseFp32Bytes(M) / bytes.length).toBeGreaterThanOrEqual(50);
      const u = decodeUpdate(bytes, M);
      expect(u.kind).toBe('sparse');
      if (u.kind === 'sparse') expect(u.indices.length).toBe(10_000);
    }
  });
  it('fp32 is exactly 16 header bytes plus 4 per value', () => {
    expect(encodeUpdate(x, { kind: 'fp32' }).length).toBe(16 + 4 * M);
  });
});

describe('update codec: round trips within the stated bounds', () => {
  it('fp32 is exact', () => {
    const x = gaussian(1001, 2);
    expect(toDense(decodeUpdate(encodeUpdate(x, { kind: 'fp32' }), 1001))).toEqual(x);
  });

  it('int8: every value within half a step (max|block| / 254) of the original', () => {
    const n = 10_007, block = 64;
    const x = gaussian(n, 3);
    x[5] = 0.5; // one outlier only coarsens its own block
    const y = toDense(decodeUpdate(encodeUpdate(x, { kind: 'int8', block }), n));
    let worst = 0;
    for (let b = 0; b < n; b += block) {
      let max = 0;
      for (let i = b; i < Math.min(b + block, n); i++) max = Math.max(max, Math.abs(x[i]));
      const bound = (max / 127 / 2) * (1 + 1e-6);
      for (let i = b; i < Math.min(b + block, n); i++) {
        expect(Math.abs(y[i] - x[i])).toBeLessThanOrEqual(bound);
        if (b > 64) worst = Math.max(worst, Math.abs(y[i] - x[i]));
      }
    }
    // blocks away from the outlier keep fine resolution
    expect(worst).toBeLessThan(0.5 / 254);
    expect(worst).toBeGreaterThan(0);
  });

  it('top-k keeps exactly the largest magnitudes, each within half a step; dropped ones are no larger', () => {
    const n = 5000;
    const x = gaussian(n, 4);
    for (const bits of [8, 4] as const) {
      const u = decodeUpdate(encodeUpdate(x, { kind: 'topk', fraction: 0.03, bits }), n);
      if (u.kind !== 'sparse') throw new Error('expected sparse');
      expect(u.indices.length).toBe(150);
      const kept = new Set(u.indices);
      const minKept = Math.min(...Array.from(u.indices, (i) => Math.abs(x[i])));
      for (let i = 0; i < n; i++) if (!kept.has(i)) expect(Math.abs(x[i])).toBeLessThanOrEqual(minKept);
      const levels = bits === 8 ? 127 : 7;
      for (let b = 0; b < 150; b += 256) {
        const idx = Array.from(u.indices.subarray(b, b + 256));
        const step = Math.max(...idx.map((i) => Math.abs(x[i]))) / levels;
        idx.forEach((i, j) => expect(Math.abs(u.values[b + j] - x[i])).toBeLessThanOrEqual((step / 2) * (1 + 1e-6)));
      }
      for (let j = 1; j < u.indices.length; j++) expect(u.indices[j]).toBeGreaterThan(u.indices[j - 1]);
    }
  });

  it('top-k of an update with few non-zeros sends only the non-zeros', () => {
    const x = new Float32Array(1000);
    x[10] = -2; x[999] = 1;
    const u = decodeUpdate(encodeUpdate(x, { kind: 'topk', fraction: 0.1, bits: 8 }));
    if (u.kind !== 'sparse') throw new Error('expected sparse');
    expect(Array.from(u.indices)).toEqual([10, 999]);
    expect(u.values[0]).toBe(-2);
    // 1 sits between levels 63 and 64 of step 2/127: within half a step
    expect(Math.abs(u.values[1] - 1)).toBeLessThanOrEqual(1 / 127);
  });

  it('an empty and an all-zero update round-trip', () => {
    for (const c of [{ kind: 'int8', block: 8 }, { kind: 'topk', fraction: 0.5, bits: 4 }, { kind: 'fp32' }] as Compression[]) {
      expect(toDense(decodeUpdate(encodeUpdate(new Float32Array(0), c), 0))).toEqual(new Float32Array(0));
      expect(toDense(decodeUpdate(encodeUpdate(new Float32Array(33), c), 33))).toEqual(new Float32Array(33));
    }
  });

  it('topKIndices picks k of equal magnitudes by lowest index and handles sorted input', () => {
    expect(Array.from(topKIndices(Float32Array.from([1, -1, 1, 1]), 2))).toEqual([0, 1]);
    const asc = Float32Array.from({ length: 1000 }, (_, i) => i + 1);
    expect(Array.from(topKIndices(asc, 3))).toEqual([997, 998, 999]);
    expect(topKIndices(asc, 0).length).toBe(0);
  });
});

describe('update codec: error feedback', () => {
  it('residual holds exactly what compression dropped: Δ + r_old = x̂ + r_new', () => {
    const n = 4000;
    for (const c of [{ kind: 'topk', fraction: 0.02, bits: 4 }, { kind: 'int8', block: 128 }] as Compression[]) {
      const residual = gaussian(n, 5, 1e-4);
      const before = residual.slice();
      const delta = gaussian(n, 6);
      const sent = toDense(decodeUpdate(encodeUpdate(delta, c, residual), n));
      for (let i = 0; i < n; i++) {
        const x = Math.fround(delta[i] + before[i]);
        expect(sent[i] + residual[i]).toBeCloseTo(x, 9);
      }
    }
  });

  it('summed over many rounds, top-k with error feedback transmits the sum of the deltas', () => {
    // what EF guarantees: Σ sent = Σ Δ − r_final, so the error does not grow with the number of rounds
    const n = 2000, rounds = 60;
    const residual = new Float32Array(n);
    const sumDelta = new Float64Array(n), sumSent = new Float64Array(n);
    const noEf = new Float64Array(n);
    for (let t = 0; t < rounds; t++) {
      const delta = gaussian(n, 100 + t);
      for (let i = 0; i < n; i++) delta[i] += 5e-4; // a small consistent drift that plain top-k never sends
      const c: Compression = { kind: 'topk', fraction: 0.01, bits: 8 };
      const sent = toDense(decodeUpdate(encodeUpdate(delta, c, residual), n));
      const plain = toDense(decodeUpdate(encodeUpdate(delta, c), n));
      for (let i = 0; i < n; i++) { sumDelta[i] += delta[i]; sumSent[i] += sent[i]; noEf[i] += plain[i]; }
    }
    let errEf = 0, errPlain = 0, ref = 0;
    for (let i = 0; i < n; i++) {
      expect(sumSent[i] + residual[i]).toBeCloseTo(sumDelta[i], 5);
      errEf += (sumSent[i] - sumDelta[i]) ** 2; errPlain += (noEf[i] - sumDelta[i]) ** 2; ref += sumDelta[i] ** 2;
    }
    expect(errEf).toBeLessThan(errPlain);
    expect(Math.sqrt(ref)).toBeGreaterThan(0);
  });

  it('fp32 with a residual sends everything and clears the residual', () => {
    const residual = Float32Array.from([0.5, -0.25]);
    const u = decodeUpdate(encodeUpdate(Float32Array.from([1, 1]), { kind: 'fp32' }, residual));
    expect(toDense(u)).toEqual(Float32Array.from([1.5, 0.75]));
    expect(residual).toEqual(new Float32Array(2));
  });
});

describe('update codec: refuses bad frames with a CodecError that says what is wrong', () => {
  const x = gaussian(300, 7);
  const int8 = encodeUpdate(x, { kind: 'int8', block: 64 });
  const topk = encodeUpdate(x, { kind: 'topk', fraction: 0.1, bits: 8 });
  const topk4 = encodeUpdate(x, { kind: 'topk', fraction: 0.1, bits: 4 });
  const fp32 = encodeUpdate(x, { kind: 'fp32' });
  const edit = (b: Uint8Array, f: (c: Uint8Array, dv: DataView) => void) => {
    const c = b.slice();
    f(c, new DataView(c.buffer));
    return c;
  };
  const bad = (b: Uint8Array, message: RegExp, expected?: number) => {
    expect(() => decodeUpdate(b, expected)).toThrow(CodecError);
    expect(() => decodeUpdate(b, expected)).toThrow(message);
  };

  it('truncated frames', () => {
    bad(int8.subarray(0, 10), /truncated/);
    bad(int8.subarray(0, int8.length - 1), /truncated/);
    bad(topk.subarray(0, 20), /truncated/);
    bad(topk.subarray(0, topk.length - 3), /truncated/);
    bad(fp32.subarray(0, fp32.length - 4), /truncated/);
    bad(new Uint8Array(0), /truncated/);
  });
  it('trailing bytes', () => {
    const longer = new Uint8Array(int8.length + 1); longer.set(int8);
    bad(longer, /trailing/);
  });
  it('wrong magic, unknown version, unknown kind, bad bits, bad reserved byte', () => {
    bad(edit(int8, (c) => { c[0] = 0x58; }), /magic/);
    bad(edit(int8, (c) => { c[4] = 2; }), /unknown codec version 2/);
    bad(edit(int8, (c) => { c[5] = 9; }), /unknown update kind/);
    bad(edit(int8, (c) => { c[6] = 4; }), /bits/);
    bad(edit(topk, (c) => { c[6] = 5; }), /bits/);
    bad(edit(int8, (c) => { c[7] = 1; }), /reserved/);
    expect(() => decodeUpdate(new Float32Array(4) as unknown as Uint8Array)).toThrow(/Uint8Array/);
  });
  it('wrong length for the model and absurd declared lengths', () => {
    bad(int8, /300 values but the model has 301 parameters/, 301);
    bad(edit(topk, (_, dv) => dv.setUint32(8, 2 ** 31, true)), /limit/);
    bad(edit(int8, (_, dv) => dv.setUint32(12, 0, true)), /block size 0/);
    bad(edit(topk, (_, dv) => dv.setUint32(12, 301, true)), /keeps 301 values of only 300/);
  });
  it('non-finite and negative scales, and non-finite fp32 values', () => {
    bad(edit(int8, (_, dv) => dv.setFloat32(16, NaN, true)), /scale 0 is NaN/);
    bad(edit(int8, (_, dv) => dv.setFloat32(20, -1, true)), /scale 1 is -1/);
    bad(edit(int8, (_, dv) => dv.setFloat32(20, 3e38, true)), /scale 1/);
    bad(edit(topk, (_, dv) => dv.setFloat32(24, Infinity, true)), /scale 0 is Infinity/);
    bad(edit(fp32, (_, dv) => dv.setFloat32(16 + 4 * 7, NaN, true)), /value 7 is NaN/);
    bad(edit(fp32, (_, dv) => dv.setFloat32(16, -Infinity, true)), /value 0 is -Infinity/);
  });
  it('out-of-range quantised codes', () => {
    bad(edit(int8, (c) => { c[int8.length - 1] = 0x80; }), /-128/);
    bad(edit(topk, (c) => { c[28] = 0x80; }), /-128/);
    bad(edit(topk4, (c) => { c[28] = 0x80; }), /code 0/);
  });
  it('indices out of range, duplicated, or a malformed index section', () => {
    const h = readHeader(topk);
    expect(h).toMatchObject({ kind: 'topk', length: 300, param: 30, bits: 8 });
    // a frame built by hand: 2 values at indices [5, 5] (gap 0) and [299, 300→ out of range]
    const frame = (gaps: number[], length = 300) => {
      const k = gaps.length, nb = 1;
      const c = new Uint8Array(24 + 4 * nb + k + gaps.length);
      const dv = new DataView(c.buffer);
      c.set([0x54, 0x54, 0x43, 0x44, 1, 2, 8, 0]);
      dv.setUint32(8, length, true); dv.setUint32(12, k, true); dv.setUint32(16, 256, true); dv.setUint32(20, gaps.length, true);
      dv.setFloat32(24, 1, true);
      c.set([1, 2].slice(0, k), 28);
      c.set(gaps, 28 + k);
      return c;
    };
    expect(decodeUpdate(frame([5, 3]))).toEqual({ kind: 'sparse', length: 300, indices: Uint32Array.from([5, 8]), values: Float32Array.from([1, 2]) });
    bad(frame([5, 0]), /strictly ascending.*duplicates/);
    bad(frame([100, 120], 200), /index 1 is 220, out of range for 200/);
    bad(frame([0x7f, 0x7f], 200), /index 1 is 254, out of range for 200/);
    bad(frame([0x80, 0x80]), /runs past|index bytes/);
    bad(edit(topk, (_, dv) => dv.setUint32(20, 1, true)), /index bytes/);
  });
  it('bad compression settings and mismatched residuals are refused at encode time', () => {
    expect(() => encodeUpdate(x, { kind: 'int8', block: 0 })).toThrow(/compression.block/);
    expect(() => encodeUpdate(x, { kind: 'topk', fraction: 0, bits: 8 })).toThrow(/compression.fraction/);
    expect(() => encodeUpdate(x, { kind: 'topk', fraction: 0.1, bits: 3 as 4 })).toThrow(/compression.bits/);
    expect(() => encodeUpdate(x, { kind: 'zip' } as unknown as Compression)).toThrow(/compression.kind/);
    expect(() => encodeUpdate(x, { kind: 'int8', block: 8 }, new Float32Array(3))).toThrow(/residual has 3/);
    const nan = x.slice(); nan[9] = NaN;
    expect(() => encodeUpdate(nan, { kind: 'int8', block: 8 })).toThrow(/delta\[9\] is NaN/);
  });
  it('encodedNorm gives the decoded update\'s norm, and refuses exactly what decoding refuses, with the same message', () => {
    const r = rng(11);
    const kinds: Compression[] = [{ kind: 'int8', block: 1 }, { kind: 'topk', fraction: 0.1, bits: 8 }, { kind: 'topk', fraction: 0.3, bits: 4 }, { kind: 'fp32' }];
    for (const c of kinds) {
      let decoded = 0;
      for (let t = 0; t < 1000; t++) {
        const cc = c.kind === 'int8' ? { ...c, block: 1 + r.int(100) } : c;
        const b = encodeUpdate(gaussian(1 + r.int(700), t), cc);
        for (let f = 0; f < r.int(3); f++) b[16 + r.int(b.length - 16)] = r.int(256); // past the 16-byte header
        let want: number | Error;
        try { want = updateNorm(decodeUpdate(b)); decoded++; } catch (e) { want = e as Error; }
        if (want instanceof Error) {
          expect(() => encodedNorm(b)).toThrow(CodecError);
          expect(() => encodedNorm(b)).toThrow(want.message);
        } else {
          expect(Math.abs(encodedNorm(b) - want)).toBeLessThanOrEqual(1e-6 * want); // fp32 rounding of each decoded value
        }
      }
      expect(decoded, c.kind).toBeGreaterThan(250);
      if (c.kind !== 'fp32') expect(decoded, c.kind).toBeLessThan(1000); // fp32 bytes are all decodable but NaN/Inf ones
    }
    expect(() => encodedNorm(int8, 301)).toThrow(/300 values but the model has 301/);
    expect(() => encodedNorm(topk, 301)).toThrow(/300 values but the model has 301/);
  });
  it('never throws anything but CodecError on random garbage or random byte flips', () => {
    const r = rng(9);
    const frames = [int8, topk, topk4, fp32];
    for (let t = 0; t < 3000; t++) {
      let b: Uint8Array;
      if (t % 3 === 0) b = Uint8Array.from({ length: r.int(80) }, () => r.int(256));
      else {
        b = frames[t % 4].slice(0, frames[t % 4].length - (t % 5 === 0 ? r.int(8) : 0));
        for (let f = 0; f <= r.int(3); f++) b[r.int(b.length)] = r.int(256);
      }
      try {
        const u = decodeUpdate(b);
        // whatever decodes is well formed
        for (const v of u.values) expect(Number.isFinite(v)).toBe(true);
        expect(Number.isFinite(updateNorm(u))).toBe(true);
      } catch (e) {
        expect(e).toBeInstanceOf(CodecError);
      }
    }
  });

  it('decodes int8 into a given array of the right length (the same values), and into a new one otherwise', () => {
    const x = Float32Array.from({ length: 1000 }, (_, i) => Math.sin(i));
    const bytes = encodeUpdate(x, { kind: 'int8', block: 64 });
    const plain = decodeUpdate(bytes, 1000);
    const into = new Float32Array(1000).fill(7);
    const given = decodeUpdate(bytes, 1000, into);
    expect(given.kind === 'dense' && given.values).toBe(into);
    expect(into).toEqual(plain.kind === 'dense' ? plain.values : undefined);
    const short = new Float32Array(10);
    const other = decodeUpdate(bytes, 1000, short);
    expect(other.kind === 'dense' && other.values).not.toBe(short);
  });
});
