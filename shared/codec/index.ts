// The update codec: how a volunteer's pseudo-gradient Δ travels to the relay. Binary, little-endian,
// self-describing, typed-array based; both sides import this file. Each codec is one file (fp32.ts,
// int8.ts, topk.ts) listed in registry.ts; this file dispatches through the registry.
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
import type { Codec } from './codec.ts';
import { CodecError, CODEC_VERSION, HEADER, MAGIC, MAX_LENGTH, type FrameHeader as FrameHeaderOf, type Update } from './frame.ts';
import { codecByCode, codecNames, codecs, type CodecName, type Compression } from './registry.ts';

export { CodecError, CODEC_VERSION, MAX_BLOCK, MAX_LENGTH, updateNorm, type Update } from './frame.ts';
export { codecNames, codecs, CompressionSchema, type CodecName, type Compression } from './registry.ts';
export { TOPK_VALUE_BLOCK } from './topk.ts';
export type FrameHeader = FrameHeaderOf<CodecName>;

/** The default job's compression: int8 with 256-value blocks (≈3.94× smaller than fp32). */
export const defaultCompression: Compression = { kind: 'int8', block: 256 };

const quoted = (names: readonly string[]) => names.map((n) => `"${n}"`).join(', ').replace(/, ([^,]*)$/, ' or $1');
const codecOf = (c: Compression): Codec => codecs[c.kind] as unknown as Codec;
const isName = (k: unknown): k is CodecName => typeof k === 'string' && Object.hasOwn(codecs, k);

// ---------------------------------------------------------------- encoding

/**
 * Compresses Δ. With `residual` (same length), compresses Δ + residual and stores what compression lost
 * back into residual (error feedback). int8 and topk refuse non-finite input (CodecError); fp32 carries
 * values verbatim, so the relay's decode is what refuses NaN/Inf there.
 */
export function encodeUpdate(delta: Float32Array, c: Compression, residual?: Float32Array): Uint8Array {
  const codec = checkCompression(c);
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
  return encodeChecked(codec, x, c, residual);
}

/** encodeUpdate(delta, c, residual) for a caller that added the residual into its own array already
 * (x[i] = delta[i] + residual[i], stored as fp32, as encodeUpdate does in a copy) and needs x no more:
 * the same bytes and residual, without a copy (a model-sized array fewer: 0.5 GB at 124M). */
export function encodeUpdateFedBack(x: Float32Array, c: Compression, residual: Float32Array): Uint8Array {
  const codec = checkCompression(c);
  if (x.length > MAX_LENGTH) throw new CodecError(`update has ${x.length} values; the codec's limit is ${MAX_LENGTH}`);
  if (residual.length !== x.length) throw new CodecError(`residual has ${residual.length} values but delta has ${x.length}; reset the residual when the model changes`);
  return encodeChecked(codec, x, c, residual);
}

function encodeChecked(codec: Codec, x: Float32Array, c: Compression, residual: Float32Array | undefined): Uint8Array {
  const n = x.length;
  if (codec.finiteOnly) {
    for (let i = 0; i < n; i++) {
      if (!Number.isFinite(x[i])) throw new CodecError(`delta[${i}] is ${x[i]}${residual ? ' (after adding the residual)' : ''}; only finite values can be compressed`);
    }
  }
  return codec.encode(x, c, residual);
}

function checkCompression(c: Compression): Codec {
  if (!c || typeof c !== 'object') throw new CodecError('compression must be an object like {kind:"int8", block:256}');
  if (!isName(c.kind)) {
    throw new CodecError(`compression.kind must be ${quoted(codecNames)}, got ${JSON.stringify((c as { kind: unknown }).kind)}`);
  }
  const codec = codecOf(c);
  codec.check(c);
  return codec;
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
  const kind = codecByCode.get(bytes[5]);
  if (!kind) throw new CodecError(`unknown update kind code ${bytes[5]}; expected ${quoted(codecNames.map((n) => `${codecs[n].code} (${n})`)).replace(/"/g, '')}`);
  if (bytes[7] !== 0) throw new CodecError('corrupt update header: reserved byte 7 must be 0');
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const length = dv.getUint32(8, true), param = dv.getUint32(12, true);
  if (length > MAX_LENGTH) throw new CodecError(`update declares ${length} values; the codec's limit is ${MAX_LENGTH}`);
  return { version, kind, bits: bytes[6], length, param };
}

function framed(bytes: Uint8Array, expectedLength: number | undefined): { h: FrameHeader; dv: DataView; codec: Codec } {
  const h = readHeader(bytes);
  if (expectedLength !== undefined && h.length !== expectedLength) {
    throw new CodecError(`update has ${h.length} values but the model has ${expectedLength} parameters`);
  }
  return { h, dv: new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength), codec: codecs[h.kind] as unknown as Codec };
}

/** Decodes and fully checks a frame. Throws CodecError saying what is wrong; never returns non-finite
 * values, out-of-range or unsorted indices. int8 and fp32 decode to dense, topk to sparse. */
export function decodeUpdate(bytes: Uint8Array, expectedLength?: number, into?: Float32Array): Update {
  const { h, dv, codec } = framed(bytes, expectedLength);
  return codec.decode(bytes, dv, h, into?.length === h.length ? into : undefined);
}

/**
 * The L2 norm of an encoded update straight from its bytes, after every check decodeUpdate makes: the
 * relay validates a 1M-parameter upload without materialising its floats. int8: √(Σ_b s_b² · Σ_{i∈b} q_i²);
 * topk the same over its kept values. Finite by construction (decodable scales keep s·levels finite).
 */
export function encodedNorm(bytes: Uint8Array, expectedLength?: number): number {
  const { h, dv, codec } = framed(bytes, expectedLength);
  return codec.norm(bytes, dv, h);
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

/** Bytes of the same update as dense fp32 values (the baseline compression is measured against). */
export const denseFp32Bytes = (length: number): number => 4 * length;

/** Frame size for `length` values: exact for fp32 and int8, an upper bound for topk (indices are varints). */
export function encodedByteBound(length: number, c: Compression): number {
  return codecOf(c).byteBound(length, c);
}

/** Bytes of an encoded update of `length` values without encoding one (the submit form's estimate):
 * exact for fp32 and int8, top-k's expectation (Codec.expectedBytes). */
export function encodedUpdateBytes(length: number, c: Compression): number {
  const codec = codecOf(c);
  return codec.expectedBytes?.(length, c) ?? codec.byteBound(length, c);
}

/** The share of coordinates one frame under `c` carries (Codec.density). */
export const compressionDensity = (c: Compression): number => codecOf(c).density(c);

/** Whether a spot-checked task under `c` is sent without error feedback (see Codec.replicaWithoutResidual). */
export const replicaWithoutResidual = (c: Compression): boolean => codecOf(c).replicaWithoutResidual;
