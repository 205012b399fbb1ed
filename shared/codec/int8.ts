// int8: header, ⌈n/B⌉ × f32 scales, then n × i8 in [-127, 127] (16 + 4⌈n/B⌉ + n bytes).
// |x̂ᵢ − xᵢ| ≤ s_b / 2 with s_b = max_{j in i's block} |x_j| / 127.
import { Type } from '@sinclair/typebox';
import { defineCodec } from './codec.ts';
import { checkScales, CodecError, expectSize, HEADER, MAX_BLOCK, readF32s, writeF32s, writeHeader, type FrameHeader } from './frame.ts';
import { quantizeBlocks } from './quantize.ts';

const CODE = 1;

export const int8 = defineCodec({
  code: CODE,
  schema: Type.Object({ kind: Type.Literal('int8'), block: Type.Integer({ minimum: 1, maximum: MAX_BLOCK }) }),
  check(c) {
    if (!Number.isInteger(c.block) || c.block < 1 || c.block > MAX_BLOCK) {
      throw new CodecError(`compression.block must be an integer in [1, ${MAX_BLOCK}], got ${c.block}`);
    }
  },
  finiteOnly: true,
  encode(x, c, residual) {
    const n = x.length, block = c.block, nb = Math.ceil(n / block);
    const { out, scales, q, seal } = int8Frame(n, block);
    quantizeBlocks(x, block, 127, q, scales);
    seal();
    if (residual) {
      for (let b = 0, s0 = 0; b < nb; b++, s0 += block) {
        const s = scales[b], s1 = Math.min(s0 + block, n);
        for (let i = s0; i < s1; i++) residual[i] = x[i] - Math.fround(q[i] * s);
      }
    }
    return out;
  },
  decode(bytes, dv, h, into) {
    const { n, block, scales, q } = int8Parts(bytes, dv, h);
    const values = into ?? new Float32Array(n);
    for (let b = 0, s0 = 0; b < scales.length; b++, s0 += block) {
      const s = scales[b], s1 = Math.min(s0 + block, n);
      for (let i = s0; i < s1; i++) {
        if (q[i] === -128) badInt8(i);
        values[i] = q[i] * s;
      }
    }
    return { kind: 'dense', values };
  },
  /** √(Σ_b s_b² · Σ_{i∈b} q_i²), without materialising the floats. */
  norm(bytes, dv, h) {
    const { n, block, scales, q } = int8Parts(bytes, dv, h);
    let sq = 0;
    for (let b = 0, s0 = 0; b < scales.length; b++, s0 += block) {
      const s1 = Math.min(s0 + block, n);
      let qq = 0; // exact, as in topk.ts
      for (let i = s0; i < s1; i++) {
        const v = q[i];
        if (v === -128) badInt8(i);
        qq += v * v;
      }
      sq += scales[b] * scales[b] * qq;
    }
    return Math.sqrt(sq);
  },
  byteBound: (length, c) => HEADER + 4 * Math.ceil(length / c.block) + length,
  density: () => 1,
  replicaWithoutResidual: false,
});

/** An int8 frame's block size, scales (checked) and quantised values, as views of its bytes. */
function int8Parts(bytes: Uint8Array, dv: DataView, h: FrameHeader): { n: number; block: number; scales: Float32Array; q: Int8Array } {
  const n = h.length, block = h.param;
  if (h.bits !== 8) throw new CodecError(`int8 update declares ${h.bits} bits; expected 8`);
  if (block < 1 || block > MAX_BLOCK) throw new CodecError(`int8 update block size ${block} is outside [1, ${MAX_BLOCK}]`);
  const nb = Math.ceil(n / block);
  expectSize(bytes, HEADER + 4 * nb + n, 'int8');
  const scales = readF32s(bytes, dv, HEADER, nb);
  checkScales(scales, 127);
  return { n, block, scales, q: new Int8Array(bytes.buffer, bytes.byteOffset + HEADER + 4 * nb, n) };
}

function badInt8(i: number): never {
  throw new CodecError(`int8 update value ${i} is -128; quantised values lie in [-127, 127]`);
}

/** An int8 frame of n values being written: its bytes, the scales and quantised values to fill, and `seal`
 * to copy the scales into the bytes once filled. */
function int8Frame(n: number, block: number): { out: Uint8Array; scales: Float32Array; q: Int8Array; seal(): void } {
  const nb = Math.ceil(n / block);
  const out = new Uint8Array(HEADER + 4 * nb + n);
  const dv = writeHeader(out, CODE, 8, n, block);
  const scales = new Float32Array(nb);
  return { out, scales, q: new Int8Array(out.buffer, HEADER + 4 * nb, n), seal: () => writeF32s(out, dv, HEADER, scales) };
}

/**
 * A version's int8 publication (version-delta.ts, publishVersionInPlace) a block at a time: per value
 * x = (target − base) + residual, quantised by quantizeBlocks as encode quantises it, the residual left
 * x − q·s, and the base moved by q·s; the same operations in the same order as the generic path (subtract,
 * add the residual, encode with feedback, decode, add), in one pass over each 1 KB block while it is in
 * cache instead of seven over the whole model (4.4 s → 2.1 s of CPU at 124M parameters). `target` holds x
 * afterwards.
 */
export function publishInt8InPlace(base: Float32Array, target: Float32Array, residual: Float32Array, block: number): Uint8Array {
  if (!Number.isInteger(block) || block < 1 || block > MAX_BLOCK) throw new CodecError(`compression.block must be an integer in [1, ${MAX_BLOCK}], got ${block}`);
  const n = base.length;
  const { out, scales, q, seal } = int8Frame(n, block);
  const dq = new Float32Array(block);
  for (let b = 0, s0 = 0; s0 < n; b++, s0 += block) {
    const s1 = Math.min(s0 + block, n);
    for (let i = s0; i < s1; i++) {
      target[i] = target[i] - base[i];
      target[i] = target[i] + residual[i];
      if (!Number.isFinite(target[i])) throw new CodecError(`delta[${i}] is ${target[i]} (after adding the residual); only finite values can be compressed`);
    }
    quantizeBlocks(target.subarray(s0, s1), block, 127, q.subarray(s0, s1), scales.subarray(b, b + 1), dq);
    for (let i = s0; i < s1; i++) {
      residual[i] = target[i] - dq[i - s0];
      base[i] = base[i] + dq[i - s0];
    }
  }
  seal();
  return out;
}
