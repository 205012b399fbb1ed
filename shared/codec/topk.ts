// topk: header, valueBlock u32, indexBytes u32, ⌈k/valueBlock⌉ × f32 scales, the k quantised values (i8,
// or two 4-bit codes per byte, low nibble first, code = q + 8 with q in [-7, 7]), then the ascending
// indices as LEB128 varint gaps (first index raw, then index[i] − index[i−1] ≥ 1).
// Kept i: |x̂ᵢ − xᵢ| ≤ s / 2 with s = (max |x| over the kept values in i's value block) / L, L = 127 (8 bits)
// or 7 (4 bits); dropped i: x̂ᵢ = 0 and |xᵢ| ≤ every kept |x_j|.
import { Type } from '@sinclair/typebox';
import { defineCodec } from './codec.ts';
import { checkScales, CodecError, expectSize, MAX_BLOCK, readF32s, writeF32s, writeHeader, type FrameHeader } from './frame.ts';
import { levelsFor, quantizeBlocks } from './quantize.ts';
import { topKIndices } from './select.ts';
import { varintSize, writeVarint } from './varint.ts';

/** Kept values per scale in top-k frames. */
export const TOPK_VALUE_BLOCK = 256;
const TOPK_HEADER = 24;
const CODE = 2;

export const topk = defineCodec({
  code: CODE,
  schema: Type.Object({ kind: Type.Literal('topk'), fraction: Type.Number({ exclusiveMinimum: 0, maximum: 1 }), bits: Type.Union([Type.Literal(4), Type.Literal(8)]) }),
  check(c) {
    if (!(typeof c.fraction === 'number' && c.fraction > 0 && c.fraction <= 1)) {
      throw new CodecError(`compression.fraction must be in (0, 1], got ${c.fraction}`);
    }
    if (c.bits !== 4 && c.bits !== 8) throw new CodecError(`compression.bits must be 4 or 8, got ${c.bits}`);
  },
  finiteOnly: true,
  encode: (x, c, residual) => encodeTopK(x, c.fraction, c.bits, residual),
  decode(bytes, dv, h) {
    const out = { values: new Float32Array(h.param), indices: new Uint32Array(h.param) };
    walkTopK(bytes, dv, h, out);
    return { kind: 'sparse', length: h.length, ...out };
  },
  norm: (bytes, dv, h) => Math.sqrt(walkTopK(bytes, dv, h)),
  /** An upper bound: indices are varints of at most 5 bytes. */
  byteBound(length, c) {
    const k = Math.min(length, Math.ceil(c.fraction * length));
    return TOPK_HEADER + 4 * Math.ceil(k / TOPK_VALUE_BLOCK) + (c.bits === 8 ? k : Math.ceil(k / 2)) + 5 * k;
  },
  /** Index gaps are varints whose sizes depend on where the kept values fall: their expectation for kept
   * positions spread at random (gaps geometric with p = k / n: one more byte per power of 128 reached). */
  expectedBytes(length, c) {
    const k = Math.min(length, Math.ceil(c.fraction * length));
    const p = k / Math.max(1, length);
    let perGap = 1;
    for (let m = 128; m <= length && p < 1; m *= 128) perGap += (1 - p) ** (m - 1);
    return TOPK_HEADER + 4 * Math.ceil(k / TOPK_VALUE_BLOCK) + (c.bits === 8 ? k : Math.ceil(k / 2)) + Math.round(k * perGap);
  },
  density: (c) => c.fraction,
  replicaWithoutResidual: true,
});

function encodeTopK(x: Float32Array, fraction: number, bits: 4 | 8, residual?: Float32Array): Uint8Array {
  const n = x.length;
  const idx = topKIndices(x, Math.min(n, Math.ceil(fraction * n)));
  const k = idx.length;
  const vals = new Float32Array(k);
  for (let j = 0; j < k; j++) vals[j] = x[idx[j]];
  const nb = Math.ceil(k / TOPK_VALUE_BLOCK);
  const scales = new Float32Array(nb);
  const q = new Int8Array(k);
  const deq = new Float32Array(k);
  quantizeBlocks(vals, TOPK_VALUE_BLOCK, levelsFor(bits), q, scales, deq);
  let indexBytes = 0;
  for (let j = 0; j < k; j++) indexBytes += varintSize(j === 0 ? idx[0] : idx[j] - idx[j - 1]);
  const valueBytes = bits === 8 ? k : Math.ceil(k / 2);
  const out = new Uint8Array(TOPK_HEADER + 4 * nb + valueBytes + indexBytes);
  const dv = writeHeader(out, CODE, bits, n, k);
  dv.setUint32(16, TOPK_VALUE_BLOCK, true);
  dv.setUint32(20, indexBytes, true);
  writeF32s(out, dv, TOPK_HEADER, scales);
  let pos = TOPK_HEADER + 4 * nb;
  if (bits === 8) {
    out.set(new Uint8Array(q.buffer, 0, k), pos);
  } else {
    for (let j = 0; j < k; j += 2) out[pos + (j >> 1)] = (q[j] + 8) | (j + 1 < k ? (q[j + 1] + 8) << 4 : 0);
  }
  pos += valueBytes;
  for (let j = 0; j < k; j++) pos = writeVarint(out, pos, j === 0 ? idx[0] : idx[j] - idx[j - 1]);
  if (residual) {
    residual.set(x);
    for (let j = 0; j < k; j++) residual[idx[j]] = vals[j] - deq[j];
  }
  return out;
}

/**
 * Checks every part of a topk frame (the checks decodeUpdate promises) and returns Σ s_b²·Σ q_j², the
 * squared norm of its values; writes the decoded values and indices too when given arrays for them. One
 * pass for both uses, so what the relay's intake refuses and what decoding refuses cannot drift apart.
 */
function walkTopK(bytes: Uint8Array, dv: DataView, h: FrameHeader, out?: { values: Float32Array; indices: Uint32Array }): number {
  const n = h.length, k = h.param, bits = h.bits;
  if (bits !== 4 && bits !== 8) throw new CodecError(`topk update declares ${bits} bits; expected 4 or 8`);
  if (k > n) throw new CodecError(`topk update keeps ${k} values of only ${n}`);
  if (bytes.length < TOPK_HEADER) throw new CodecError(`topk update is truncated: ${bytes.length} bytes, its header needs ${TOPK_HEADER}`);
  const vb = dv.getUint32(16, true), indexBytes = dv.getUint32(20, true);
  if (vb < 1 || vb > MAX_BLOCK) throw new CodecError(`topk update value block ${vb} is outside [1, ${MAX_BLOCK}]`);
  if (indexBytes < k || indexBytes > 5 * k) throw new CodecError(`topk update declares ${indexBytes} index bytes for ${k} indices (needs ${k}..${5 * k})`);
  const nb = Math.ceil(k / vb);
  const valueBytes = bits === 8 ? k : Math.ceil(k / 2);
  expectSize(bytes, TOPK_HEADER + 4 * nb + valueBytes + indexBytes, 'topk');
  const scales = readF32s(bytes, dv, TOPK_HEADER, nb);
  checkScales(scales, levelsFor(bits));
  let pos = TOPK_HEADER + 4 * nb, sq = 0;
  for (let b = 0, j0 = 0; b < nb; b++, j0 += vb) {
    const s = scales[b], j1 = Math.min(j0 + vb, k);
    let qq = 0; // exact: a block of ≤ 2^20 values of at most 127² each stays below 2^53
    for (let j = j0; j < j1; j++) {
      let qj: number;
      if (bits === 8) {
        qj = (bytes[pos + j] << 24) >> 24;
        if (qj === -128) throw new CodecError(`topk update value ${j} is -128; quantised values lie in [-127, 127]`);
      } else {
        const code = (bytes[pos + (j >> 1)] >> ((j & 1) * 4)) & 15;
        if (code === 0) throw new CodecError(`topk update value ${j} has 4-bit code 0; codes lie in [1, 15]`);
        qj = code - 8;
      }
      qq += qj * qj;
      if (out) out.values[j] = qj * s;
    }
    sq += s * s * qq;
  }
  if (bits === 4 && k % 2 === 1 && bytes[pos + (k >> 1)] >> 4 !== 0) {
    throw new CodecError('topk update is corrupt: the padding nibble after an odd number of 4-bit values must be 0');
  }
  pos += valueBytes;
  const end = pos + indexBytes;
  let prev = -1;
  for (let j = 0; j < k; j++) {
    // LEB128 varint, at most 5 bytes for a u32
    let v = 0, mul = 1, b: number, len = 0;
    do {
      if (pos >= end) throw new CodecError(`topk update index ${j} runs past the index section (corrupt or truncated)`);
      b = bytes[pos++];
      v += (b & 0x7f) * mul;
      mul *= 128;
      if (++len > 5) throw new CodecError(`topk update index ${j} has an over-long varint`);
    } while (b & 0x80);
    if (j > 0 && v === 0) throw new CodecError(`topk update indices must be strictly ascending; index ${j} duplicates index ${j - 1} (${prev})`);
    const index = j === 0 ? v : prev + v;
    if (index >= n) throw new CodecError(`topk update index ${j} is ${index}, out of range for ${n} values`);
    if (out) out.indices[j] = index;
    prev = index;
  }
  if (pos !== end) throw new CodecError(`topk update index section has ${end - pos} unused bytes (corrupt)`);
  return sq;
}

