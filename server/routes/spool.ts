// An upload body as it arrives, not buffered whole: counted on the way, kept in memory (and hashed, SHA-256)
// while small, and once past `memoryBytes` its codec payload written to a temporary file in the data
// directory (the frame's small JSON header stays in memory), which intake validates on the worker pool
// and the store takes over by renaming it (../scheduler/intake.ts), with the
// socket paused whenever the disk is behind (backpressure), so one address's many slow uploads, or one
// 2 GiB fp32 update, never sit in the relay's memory while they arrive. The route's size cap and
// in-flight caps still act first (./body-cap.ts runs before this). A file is removed when its request
// ends, however it ends, and any a crash left behind when the relay next starts.
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readdirSync, readSync, rmSync, fstatSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { frameHeadLength } from '../../shared/protocol/frame.ts';
import { RelayError } from '../errors.ts';

/** Bodies up to this size stay in memory: a file costs a small body 1.3–2.2× the CPU (npm run bench:spool,
 * 16 KiB–1 MiB; 1.04× at 64 MiB), and holding 1 MiB per upload is what the in-flight caps allow for. */
export const SPOOL_MEMORY_BYTES = 1 << 20;

/** A spooled body is written in pieces of about this size (four socket chunks): fewer writes, little held. */
const WRITE_BYTES = 256 * 1024;

export type UploadBody = {
  /** the whole body's length; its SHA-256 (hex) when it stayed in memory, computed as it arrived (a spooled
   * body's is computed from its file on the pool: ./updates.ts) */
  readonly byteLength: number;
  readonly sha256?: string;
  /** The body's first bytes, in memory: all of it when it was not spooled; when it was, the update frame's
   * magic, length and JSON header (or, for a body that is no frame, its first 8 bytes), so the file holds
   * exactly the codec payload and the store can take it over as it is. */
  readonly head: Uint8Array;
  /** where the rest (the payload) was spooled (undefined: it stayed in memory) */
  readonly file?: string;
  /** The body's bytes: in memory already, or read from its file now, into an ArrayBuffer of their own. */
  bytes(): Uint8Array;
  /** Removes its file (idempotent; a file the store took over is gone from here already). */
  discard(): void;
};

/** The directory of in-progress upload files, emptied of what a crash left (call once per relay). */
export function openSpoolDir(dataDir: string): string {
  const dir = join(dataDir, 'uploads');
  mkdirSync(dir, { recursive: true });
  for (const f of readdirSync(dir)) if (f.endsWith('.part')) rmSync(join(dir, f), { force: true });
  return dir;
}

export async function spoolBody(body: Readable, dir: string, memoryBytes = SPOOL_MEMORY_BYTES): Promise<UploadBody> {
  const hash = createHash('sha256');
  const held: Buffer[] = [];
  let byteLength = 0;
  let file: string | undefined;
  let fh: FileHandle | undefined;
  let head: Uint8Array | undefined;
  const pending: Buffer[] = [];
  let pendingBytes = 0;
  const discard = () => { if (file) rmSync(file, { force: true }); };
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      if (!fh) hash.update(chunk); // a spooled body is hashed from its file, off the loop
      byteLength += chunk.length;
      if (!fh) {
        held.push(chunk);
        if (byteLength <= memoryBytes || byteLength < 8) continue;
        // the frame's header stays in memory (at most MAX_FRAME_HEADER_BYTES more), the payload goes to the file
        const all = held.length === 1 ? held[0] : Buffer.concat(held, byteLength);
        held.splice(0, held.length, all);
        const split = frameHeadLength(all.subarray(0, 8));
        if (byteLength < split) continue;
        head = new Uint8Array(all.subarray(0, split)); // a copy: the rest of `all` is written, then let go
        held.length = 0;
        file = join(dir, `${Date.now()}-${randomBytes(8).toString('hex')}.part`);
        fh = await open(file, 'wx');
        await fh.write(all.subarray(split));
      } else {
        // a few chunks a write (each write is a round trip to libuv's threads and a promise: CPU on the
        // loop); the loop takes the next chunk only once they are written, so a slow disk pauses the socket
        pending.push(chunk);
        pendingBytes += chunk.length;
        if (pendingBytes >= WRITE_BYTES) { await fh.writev(pending.splice(0)); pendingBytes = 0; }
      }
    }
    if (pending.length) await fh!.writev(pending.splice(0));
  } catch (e) {
    await fh?.close().catch(() => undefined);
    discard();
    // a client that went away mid-body: nobody hears the answer, but it must not read as a relay fault
    if ((e as NodeJS.ErrnoException).code === 'ERR_STREAM_PREMATURE_CLOSE' || (e as Error).message === 'aborted') {
      throw new RelayError('TT_ERR_BAD_REQUEST', 'the upload body ended before it was complete (the connection closed)');
    }
    throw e;
  }
  await fh?.close();
  if (!file) {
    const all = held.length === 1 ? held[0] : Buffer.concat(held, byteLength);
    const bytes = new Uint8Array(all.buffer, all.byteOffset, all.byteLength);
    return { byteLength, sha256: hash.digest('hex'), head: bytes, bytes: () => bytes, discard: () => undefined };
  }
  const path = file, front = head!;
  return { byteLength, head: front, file: path, bytes: () => readWhole(path, front, byteLength), discard };
}

/** A spooled body read back, its head first, in pieces into one ArrayBuffer (readFileSync stops at 2 GiB). */
function readWhole(file: string, head: Uint8Array, byteLength: number): Uint8Array {
  const fd = openSync(file, 'r');
  try {
    if (fstatSync(fd).size !== byteLength - head.length) throw new Error(`upload file ${file} is not the ${byteLength - head.length} bytes received after the frame's header`);
    const out = new Uint8Array(new ArrayBuffer(byteLength));
    out.set(head);
    for (let at = head.length; at < byteLength;) {
      const n = readSync(fd, out, at, Math.min(byteLength - at, 1 << 30), at - head.length);
      if (n === 0) throw new Error(`upload file ${file} ended early`);
      at += n;
    }
    return out;
  } finally {
    closeSync(fd);
  }
}
