// The parts of the codec's wire format every codec shares: the 16-byte header, the error type, the
// decoded-update type, and the little-endian fp32 and size helpers (the format is described in index.ts).

export type Update =
  | { kind: 'dense'; values: Float32Array }
  | { kind: 'sparse'; length: number; indices: Uint32Array; values: Float32Array };

/** Largest update the codec accepts (2^28 parameters = 1 GiB dense), so a forged header cannot make a
 * decoder allocate without bound. */
export const MAX_LENGTH = 2 ** 28;
/** Largest int8 block / top-k value block. */
export const MAX_BLOCK = 2 ** 20;

export const CODEC_VERSION = 1;
export const MAGIC = [0x54, 0x54, 0x43, 0x44]; // "TTCD"
export const HEADER = 16;
const littleEndianHost = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

export class CodecError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CodecError';
  }
}

/** A frame's header; `kind` is the codec's registry name. */
export type FrameHeader<K extends string = string> = { version: number; kind: K; bits: number; length: number; param: number };

export function writeHeader(out: Uint8Array, code: number, bits: number, length: number, param: number): DataView {
  out.set(MAGIC, 0);
  out[4] = CODEC_VERSION;
  out[5] = code;
  out[6] = bits;
  out[7] = 0;
  const dv = new DataView(out.buffer, out.byteOffset, out.byteLength);
  dv.setUint32(8, length, true);
  dv.setUint32(12, param, true);
  return dv;
}

export function writeF32s(out: Uint8Array, dv: DataView, at: number, v: Float32Array): void {
  if (littleEndianHost) out.set(new Uint8Array(v.buffer, v.byteOffset, v.byteLength), at);
  else for (let i = 0; i < v.length; i++) dv.setFloat32(at + 4 * i, v[i], true);
}

export function readF32s(bytes: Uint8Array, dv: DataView, at: number, count: number): Float32Array {
  const out = new Float32Array(count);
  if (littleEndianHost) new Uint8Array(out.buffer).set(bytes.subarray(at, at + 4 * count));
  else for (let i = 0; i < count; i++) out[i] = dv.getFloat32(at + 4 * i, true);
  return out;
}

export function expectSize(bytes: Uint8Array, want: number, what: string): void {
  if (bytes.length < want) throw new CodecError(`${what} update is truncated: ${bytes.length} bytes, its header implies ${want}`);
  if (bytes.length > want) throw new CodecError(`${what} update is corrupt: ${bytes.length} bytes, its header implies ${want} (trailing bytes)`);
}

export function checkScales(scales: Float32Array, levels: number): void {
  for (let b = 0; b < scales.length; b++) {
    const s = scales[b];
    // s·levels must also stay finite, or a finite scale could still decode to Infinity
    if (!(s >= 0) || !Number.isFinite(Math.fround(s * levels))) {
      throw new CodecError(`update scale ${b} is ${s}; scales must be finite and ≥ 0`);
    }
  }
}

/** L2 norm (float64 accumulation). */
export function updateNorm(u: Update): number {
  let sq = 0;
  const v = u.values;
  for (let i = 0; i < v.length; i++) sq += v[i] * v[i];
  return Math.sqrt(sq);
}
