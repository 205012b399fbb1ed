// The update frame: what a volunteer POSTs to /api/tasks/:taskId/update. A small JSON header (lease,
// losses, timings) followed by the codec payload, in one binary body, so no float ever travels as JSON.
//   0 magic "TTU1" · 4 u32 LE header length · 8 UTF-8 JSON header · then the codec payload.
import type { UpdateHeader } from './messages.ts';

const MAGIC = [0x54, 0x54, 0x55, 0x31]; // "TTU1"
/** Headers are small (a lease and H losses); a bigger one is a broken or hostile client. */
export const MAX_FRAME_HEADER_BYTES = 1 << 20;

export class FrameError extends Error {
  override name = 'FrameError';
}

export function encodeUpdateFrame(header: UpdateHeader, payload: Uint8Array): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + payload.length);
  out.set(MAGIC, 0);
  new DataView(out.buffer).setUint32(4, json.length, true);
  out.set(json, 8);
  out.set(payload, 8 + json.length);
  return out;
}

/** How many leading bytes of a frame hold its magic, length and JSON header (the payload starts there), from
 * at least its first 8 bytes; 8 when those are no frame's start (decodeUpdateFrame of those 8 alone then
 * refuses it with the same message as of the whole body). Lets an upload's header be kept apart from its
 * payload while the body arrives. */
export function frameHeadLength(start: Uint8Array): number {
  if (start.length < 8) throw new RangeError('frameHeadLength needs the first 8 bytes of the frame');
  for (let i = 0; i < 4; i++) if (start[i] !== MAGIC[i]) return 8;
  const len = new DataView(start.buffer, start.byteOffset, 8).getUint32(4, true);
  return len > MAX_FRAME_HEADER_BYTES ? 8 : 8 + len;
}

/** Splits a frame; the header is parsed JSON but not yet schema-checked (the caller does that). */
export function decodeUpdateFrame(bytes: Uint8Array): { header: unknown; payload: Uint8Array } {
  if (bytes.length < 8) throw new FrameError(`update frame is ${bytes.length} bytes; it needs at least 8 (magic TTU1 + header length)`);
  for (let i = 0; i < 4; i++) if (bytes[i] !== MAGIC[i]) throw new FrameError('update frame does not start with magic "TTU1"; send the body built by encodeUpdateFrame');
  const len = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(4, true);
  if (len > MAX_FRAME_HEADER_BYTES) throw new FrameError(`update frame header length ${len} exceeds ${MAX_FRAME_HEADER_BYTES} bytes`);
  if (8 + len > bytes.length) throw new FrameError(`update frame is truncated: header says ${len} header bytes but only ${bytes.length - 8} follow`);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + len)));
  } catch (e) {
    throw new FrameError(`update frame header is not valid UTF-8 JSON: ${(e as Error).message}`);
  }
  return { header, payload: bytes.subarray(8 + len) };
}
