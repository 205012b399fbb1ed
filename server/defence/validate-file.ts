// A large upload's checks off the event loop: its codec payload, spooled to a file as it arrived
// (../routes/spool.ts), is hashed (for its signature) and read and checked (structure, finite values, norm
// against the bound: ./validate.ts) in a pool worker, which answers only the hash, or the verdict and the
// norm. At 124M parameters an int8 payload is 124 MB: hashing, reading, decoding and summing it on the loop
// would hold every other request for about a second.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { runOnPool } from '../pool/index.ts';
import { validateEncodedSafe, type ValidationContext, type ValidationResult } from './validate.ts';

export type FileValidation = ValidationResult & { /** the worker's time reading and checking the file */ ms: number };

/** What the worker runs: the file read whole (in pieces: one read stops at 2 GiB), then validateEncodedSafe. */
export async function validateFile(file: string, ctx: ValidationContext): Promise<FileValidation> {
  const t0 = performance.now();
  const fh = await open(file, 'r');
  let bytes: Uint8Array;
  try {
    const size = (await fh.stat()).size;
    bytes = new Uint8Array(new ArrayBuffer(size));
    for (let at = 0; at < size;) {
      const { bytesRead } = await fh.read(bytes, at, Math.min(size - at, 1 << 30), at);
      if (bytesRead === 0) throw new Error(`upload file ${file} ended early`);
      at += bytesRead;
    }
  } finally {
    await fh.close();
  }
  return { ...validateEncodedSafe(bytes, ctx), ms: performance.now() - t0 };
}

/** What the worker runs: SHA-256 (hex) of the head and then the file, streamed (never the whole file at once). */
export async function hashUpload(head: Uint8Array, file: string): Promise<string> {
  const h = createHash('sha256').update(head);
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** hashUpload on the process's worker pool. */
export const hashOnPool = (head: Uint8Array, file: string): Promise<string> => runOnPool({ kind: 'hash-upload', head, file });

/** validateFile on the process's worker pool. */
export const validateOnPool = (file: string, ctx: ValidationContext): Promise<FileValidation> => runOnPool({ kind: 'validate', file, ctx });
