// The update codec: how a volunteer's pseudo-gradient Δ travels to the relay. Binary, little-endian,
// self-describing, typed-array based; both sides import this one file.
//
// Wire format (version 1). Every frame starts with a 16-byte header:
//   0  magic  "TTCD" (4 bytes)         8  length u32  number of parameters in the update
//   4  version u8 = 1                  12 param u32   int8: block size; topk: kept count k; fp32: 0
//   5  kind u8 (0 fp32, 1 int8, 2 topk)
//   6  bits u8 (32, 8, or 4|8)        7  reserved u8 = 0
// fp32:  header, then length × f32.                                    16 + 4n bytes
// int8:  header, ceil(n/block) × f32 scales, then n × i8 in [-127, 127]. 16 + 4⌈n/B⌉ + n bytes
// topk:  header, valueBlock u32, indexBytes u32, ceil(k/valueBlock) × f32 scales, the k quantised values
//        (i8, or two 4-bit codes per byte, low nibble first, code = q + 8 with q in [-7, 7]),
//        then the ascending indices as LEB128 varint gaps (first index raw, then index[i] − index[i−1] ≥ 1).
// A frame's size must match its header exactly; anything else is a CodecError.
//
// Error bounds (x = Δ, plus the residual when error feedback is on; x̂ = toDense(decode(encode(x)))):
//   fp32:  x̂ = x exactly.
//   int8:  |x̂ᵢ − xᵢ| ≤ s_b / 2 with s_b = max_{j in i's block} |x_j| / 127, i.e. at most 1/254 of the
//          block's largest magnitude (plus fp32 rounding, ~1e-7 relative).
//   topk:  kept i: |x̂ᵢ − xᵢ| ≤ s / 2 with s = (max |x| over the kept values in i's value block) / L,
//          L = 127 (8 bits) or 7 (4 bits); dropped i: x̂ᵢ = 0 and |xᵢ| ≤ every kept |x_j|.
// Error feedback: with a residual r, the codec compresses x = Δ + r and then sets r ← x − x̂, so what
// compression dropped or rounded away is sent in a later update instead of being lost.
import { levelsFor, quantizeBlocks } from './quantize.ts';
import { topKIndices } from './select.ts';
import { varintSize, writeVarint } from './varint.ts';

export type Compression = { kind: 'int8'; block: number } | { kind: 'topk'; fraction: number; bits: 4 | 8 } | { kind: 'fp32' };
export type Update =
  | { kind: 'dense'; values: Float32Array }
  | { kind: 'sparse'; length: number; indices: Uint32Array; values: Float32Array };

/** The default job's compression: int8 with 256-value blocks (≈3.94× smaller than fp32). */
export const defaultCompression: Compression = { kind: 'int8', block: 256 };

/** Largest update the codec accepts (2^28 parameters = 1 GiB dense), so a forged header cannot make a
 * decoder allocate without bound. */
export const MAX_LENGTH = 2 ** 28;
/** Largest int8 block / top-k value block. */
export const MAX_BLOCK = 2 ** 20;
/** Kept values per scale in top-k frames. */
export const TOPK_VALUE_BLOCK = 256;

export const CODEC_VERSION = 1;
const MAGIC = [0x54, 0x54, 0x43, 0x44]; // "TTCD"
const HEADER = 16;
const TOPK_HEADER = 24;
const KIND_CODE = { fp32: 0, int8: 1, topk: 2 } as const;
const KIND_NAME = ['fp32', 'int8', 'topk'] as const;
const littleEndianHost = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

export class CodecError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CodecError';
  }
}

export type FrameHeader = { version: number; kind: 'fp32' | 'int8' | 'topk'; bits: number; length: number; param: number };

// ---------------------------------------------------------------- encoding

/**
 * Compresses Δ. With `residual` (same length), compresses Δ + residual and stores what compression lost
 * back into residual (error feedback). int8 and topk refuse non-finite input (CodecError); fp32 carries
 * values verbatim, so the relay's decode is what refuses NaN/Inf there.
 */
export function encodeUpdate(delta: Float32Array, c: Compression, residual?: Float32Array): Uint8Array {
  checkCompression(c);
  const n = delta.length;
  if (n > MAX_LENGTH) throw new CodecError(`update has ${n} values; the codec's limit is ${MAX_LENGTH}`);
  if (residual && residual.length !== n) {
    throw new CodecError(`residual has ${residual.length} values but delta has ${n}; reset the residual when the model changes`);
  }
  let x = delta;
  if (residual) {
    x = new Float32Array(n);
    for (let i = 0; i < n; i++) x[i] = delta[i] + residual[i];
  }
  if (c.kind === 'fp32') {
    if (residual) residual.fill(0);
    return encodeFp32(x);
  }
  for (let i = 0; i < n; i++) {
    if (!Number.isFinite(x[i])) throw new CodecError(`delta[${i}] is ${x[i]}${residual ? ' (after adding the residual)' : ''}; only finite values can be compressed`);
  }
  return c.kind === 'int8' ? encodeInt8(x, c.block, residual) : encodeTopK(x, c.fraction, c.bits, residual);
}

function checkCompression(c: Compression): void {
  if (!c || typeof c !== 'object') throw new CodecError('compression must be an object like {kind:"int8", block:256}');
  if (c.kind === 'fp32') return;
  if (c.kind === 'int8') {
    if (!Number.isInteger(c.block) || c.block < 1 || c.block > MAX_BLOCK) {
      throw new CodecError(`compression.block must be an integer in [1, ${MAX_BLOCK}], got ${c.block}`);
    }
    return;
  }
  if (c.kind === 'topk') {
    if (!(typeof c.fraction === 'number' && c.fraction > 0 && c.fraction <= 1)) {
      throw new CodecError(`compression.fraction must be in (0, 1], got ${c.fraction}`);
    }
    if (c.bits !== 4 && c.bits !== 8) throw new CodecError(`compression.bits must be 4 or 8, got ${c.bits}`);
    return;
  }
  throw new CodecError(`compression.kind must be "fp32", "int8" or "topk", got ${JSON.stringify((c as { kind: unknown }).kind)}`);
}

function writeHeader(out: Uint8Array, kind: keyof typeof KIND_CODE, bits: number, length: number, param: number): DataView {
  out.set(MAGIC, 0);
  out[4] = CODEC_VERSION;
  out[5] = KIND_CODE[kind];
  out[6] = bits;
  out[7] = 0;
  const dv = new DataView(out.buffer, out.byteOffset, out.byteLength);
  dv.setUint32(8, length, true);
  dv.setUint32(12, param, true);
  return dv;
}

function encodeFp32(x: Float32Array): Uint8Array {
  const out = new Uint8Array(HEADER + 4 * x.length);
  const dv = writeHeader(out, 'fp32', 32, x.length, 0);
  writeF32s(out, dv, HEADER, x);
  return out;
}

function encodeInt8(x: Float32Array, block: number, residual?: Float32Array): Uint8Array {
  const n = x.length, nb = Math.ceil(n / block);
  const out = new Uint8Array(HEADER + 4 * nb + n);
  const dv = writeHeader(out, 'int8', 8, n, block);
  const scales = new Float32Array(nb);
  const q = new Int8Array(out.buffer, HEADER + 4 * nb, n);
  quantizeBlocks(x, block, 127, q, scales);
  writeF32s(out, dv, HEADER, scales);
  if (residual) {
    for (let b = 0, s0 = 0; b < nb; b++, s0 += block) {
      const s = scales[b], s1 = Math.min(s0 + block, n);
      for (let i = s0; i < s1; i++) residual[i] = x[i] - Math.fround(q[i] * s);
    }
  }
  return out;
}

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
  const dv = writeHeader(out, 'topk', bits, n, k);
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

function writeF32s(out: Uint8Array, dv: DataView, at: number, v: Float32Array): void {
  if (littleEndianHost) out.set(new Uint8Array(v.buffer, v.byteOffset, v.byteLength), at);
  else for (let i = 0; i < v.length; i++) dv.setFloat32(at + 4 * i, v[i], true);
}

// ---------------------------------------------------------------- decoding

/** Reads and checks the 16-byte header only (cheap: lets the relay refuse a wrong-sized update early). */
export function readHeader(bytes: Uint8Array): FrameHeader {
  if (!(bytes instanceof Uint8Array)) throw new CodecError('update payload must be bytes (Uint8Array)');
  if (bytes.length < HEADER) throw new CodecError(`update payload is truncated: ${bytes.length} bytes, the header alone needs ${HEADER}`);
  for (let i = 0; i < 4; i++) {
    if (bytes[i] !== MAGIC[i]) throw new CodecError('update payload does not start with the codec magic "TTCD"; encode it with shared/codec encodeUpdate');
  }
  const version = bytes[4];
  if (version !== CODEC_VERSION) throw new CodecError(`unknown codec version ${version}; this relay reads version ${CODEC_VERSION}`);
  const kind = KIND_NAME[bytes[5]];
  if (!kind) throw new CodecError(`unknown update kind code ${bytes[5]}; expected 0 (fp32), 1 (int8) or 2 (topk)`);
  if (bytes[7] !== 0) throw new CodecError('corrupt update header: reserved byte 7 must be 0');
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const length = dv.getUint32(8, true), param = dv.getUint32(12, true);
  if (length > MAX_LENGTH) throw new CodecError(`update declares ${length} values; the codec's limit is ${MAX_LENGTH}`);
  return { version, kind, bits: bytes[6], length, param };
}

/** Decodes and fully checks a frame. Throws CodecError saying what is wrong; never returns non-finite
 * values, out-of-range or unsorted indices. int8 and fp32 decode to dense, topk to sparse. */
export function decodeUpdate(bytes: Uint8Array, expectedLength?: number): Update {
  const h = readHeader(bytes);
  if (expectedLength !== undefined && h.length !== expectedLength) {
    throw new CodecError(`update has ${h.length} values but the model has ${expectedLength} parameters`);
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (h.kind === 'fp32') return decodeFp32(bytes, dv, h);
  if (h.kind === 'int8') return decodeInt8(bytes, dv, h);
  return decodeTopK(bytes, dv, h);
}

function expectSize(bytes: Uint8Array, want: number, what: string): void {
  if (bytes.length < want) throw new CodecError(`${what} update is truncated: ${bytes.length} bytes, its header implies ${want}`);
  if (bytes.length > want) throw new CodecError(`${what} update is corrupt: ${bytes.length} bytes, its header implies ${want} (trailing bytes)`);
}

function readF32s(bytes: Uint8Array, dv: DataView, at: number, count: number): Float32Array {
  const out = new Float32Array(count);
  if (littleEndianHost) new Uint8Array(out.buffer).set(bytes.subarray(at, at + 4 * count));
  else for (let i = 0; i < count; i++) out[i] = dv.getFloat32(at + 4 * i, true);
  return out;
}

function checkScales(scales: Float32Array, levels: number): void {
  for (let b = 0; b < scales.length; b++) {
    const s = scales[b];
    // s·levels must also stay finite, or a finite scale could still decode to Infinity
    if (!(s >= 0) || !Number.isFinite(Math.fround(s * levels))) {
      throw new CodecError(`update scale ${b} is ${s}; scales must be finite and ≥ 0`);
    }
  }
}

function decodeFp32(bytes: Uint8Array, dv: DataView, h: FrameHeader): Update {
  if (h.bits !== 32) throw new CodecError(`fp32 update declares ${h.bits} bits; expected 32`);
  if (h.param !== 0) throw new CodecError('corrupt fp32 update header: param field must be 0');
  expectSize(bytes, HEADER + 4 * h.length, 'fp32');
  const values = readF32s(bytes, dv, HEADER, h.length);
  for (let i = 0; i < values.length; i++) {
    if (!Number.isFinite(values[i])) throw new CodecError(`update value ${i} is ${values[i]}; values must be finite`);
  }
  return { kind: 'dense', values };
}

function decodeInt8(bytes: Uint8Array, dv: DataView, h: FrameHeader): Update {
  const { n, block, scales, q } = int8Parts(bytes, dv, h);
  const values = new Float32Array(n);
  for (let b = 0, s0 = 0; b < scales.length; b++, s0 += block) {
    const s = scales[b], s1 = Math.min(s0 + block, n);
    for (let i = s0; i < s1; i++) {
      if (q[i] === -128) badInt8(i);
      values[i] = q[i] * s;
    }
  }
  return { kind: 'dense', values };
}

/**
 * The L2 norm of an encoded update straight from its bytes, after every check decodeUpdate makes: the
 * relay validates a 1M-parameter upload without materialising its floats. int8: √(Σ_b s_b² · Σ_{i∈b} q_i²);
 * topk the same over its kept values. Finite by construction (decodable scales keep s·levels finite).
 */
export function encodedNorm(bytes: Uint8Array, expectedLength?: number): number {
  const h = readHeader(bytes);
  if (expectedLength !== undefined && h.length !== expectedLength) {
    throw new CodecError(`update has ${h.length} values but the model has ${expectedLength} parameters`);
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (h.kind === 'topk') return Math.sqrt(walkTopK(bytes, dv, h));
  if (h.kind === 'fp32') return updateNorm(decodeFp32(bytes, dv, h));
  const { n, block, scales, q } = int8Parts(bytes, dv, h);
  let sq = 0;
  for (let b = 0, s0 = 0; b < scales.length; b++, s0 += block) {
    const s1 = Math.min(s0 + block, n);
    let qq = 0; // exact, as in walkTopK
    for (let i = s0; i < s1; i++) {
      const v = q[i];
      if (v === -128) badInt8(i);
      qq += v * v;
    }
    sq += scales[b] * scales[b] * qq;
  }
  return Math.sqrt(sq);
}

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

function decodeTopK(bytes: Uint8Array, dv: DataView, h: FrameHeader): Update {
  const out = { values: new Float32Array(h.param), indices: new Uint32Array(h.param) };
  walkTopK(bytes, dv, h, out);
  return { kind: 'sparse', length: h.length, ...out };
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

// ---------------------------------------------------------------- helpers

/** Dense view of an update (a dense update's own array, not a copy). */
export function toDense(u: Update): Float32Array {
  if (u.kind === 'dense') return u.values;
  const out = new Float32Array(u.length);
  for (let j = 0; j < u.indices.length; j++) out[u.indices[j]] = u.values[j];
  return out;
}

export function updateLength(u: Update): number {
  return u.kind === 'dense' ? u.values.length : u.length;
}

/** L2 norm (float64 accumulation). */
export function updateNorm(u: Update): number {
  let sq = 0;
  const v = u.values;
  for (let i = 0; i < v.length; i++) sq += v[i] * v[i];
  return Math.sqrt(sq);
}

/** Bytes of the same update as dense fp32 values (the baseline compression is measured against). */
export const denseFp32Bytes = (length: number): number => 4 * length;

/** Frame size for `length` values: exact for fp32 and int8, an upper bound for topk (indices are varints). */
export function encodedByteBound(length: number, c: Compression): number {
  if (c.kind === 'fp32') return HEADER + 4 * length;
  if (c.kind === 'int8') return HEADER + 4 * Math.ceil(length / c.block) + length;
  const k = Math.min(length, Math.ceil(c.fraction * length));
  return TOPK_HEADER + 4 * Math.ceil(k / TOPK_VALUE_BLOCK) + (c.bits === 8 ? k : Math.ceil(k / 2)) + 5 * k;
}
