// A large checkpoint part on Postgres as numbered chunk rows (version_chunks), not one bytea: a bytea holds
// at most 1 GB, and pg reads one as a hex string twice its size, which V8 cannot build past about 512 MB
// (so a 256 MB params column is already unreadable). Chunks stay in the database, so relays on different
// machines still share checkpoints through it alone. The versions row names the chunked parts and their
// sizes (`external_parts`, JSON); its chunks go with it (ON DELETE CASCADE), in the same transaction.
import { Readable } from 'node:stream';

export type Part = 'params' | 'momentum' | 'residual' | 'delta';
export type ChunkedParts = Partial<Record<Part, number>>;

/** Parts over this size are chunked, in chunks of this size: 32 MiB of hex per chunk read. */
export const CHUNK_BYTES = 16 << 20;

/** Runs a chunk query: the store's pool or transaction, or a worker's own pool. */
export type Query = (sql: string, args: unknown[]) => Promise<{ bytes: Buffer }[]>;

const view = (a: Uint8Array): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

/** Splits the parts over `chunkBytes` into chunk rows (after the version row is inserted: they reference
 * it); answers the row's values for each part (empty when chunked) and the `external_parts` column. */
export function splitParts(parts: Partial<Record<Part, Uint8Array>>, chunkBytes: number): {
  row: Partial<Record<Part, Buffer>>; chunked: string | null; chunks: { part: Part; idx: number; bytes: Buffer }[];
} {
  const row: Partial<Record<Part, Buffer>> = {};
  const sizes: ChunkedParts = {};
  const chunks: { part: Part; idx: number; bytes: Buffer }[] = [];
  for (const [part, bytes] of Object.entries(parts) as [Part, Uint8Array][]) {
    if (bytes.byteLength <= chunkBytes) { row[part] = view(bytes); continue; }
    row[part] = Buffer.alloc(0);
    sizes[part] = bytes.byteLength;
    for (let idx = 0, at = 0; at < bytes.byteLength; idx++, at += chunkBytes) chunks.push({ part, idx, bytes: view(bytes.subarray(at, at + chunkBytes)) });
  }
  return { row, chunked: Object.keys(sizes).length ? JSON.stringify(sizes) : null, chunks };
}

export const INSERT_CHUNK = 'INSERT INTO version_chunks (job_id, version, part, idx, bytes) VALUES ($1, $2, $3, $4, $5)';
const SELECT_CHUNK = 'SELECT bytes FROM version_chunks WHERE job_id = $1 AND version = $2 AND part = $3 AND idx = $4';

/** A chunked part, read a chunk at a time into one ArrayBuffer of its own (aligned for a Float32Array
 * view); undefined when a chunk is missing (the version was dropped meanwhile). */
export async function readChunked(query: Query, jobId: string, version: number, part: Part, byteLength: number): Promise<Uint8Array | undefined> {
  const out = new Uint8Array(new ArrayBuffer(byteLength));
  let at = 0;
  for (let idx = 0; at < byteLength; idx++) {
    const r = (await query(SELECT_CHUNK, [jobId, version, part, idx]))[0];
    if (!r || at + r.bytes.byteLength > byteLength) return undefined;
    out.set(r.bytes, at);
    at += r.bytes.byteLength;
  }
  return out;
}

/** The same as a stream, one chunk in memory at a time (a download); it errors if a chunk is gone. */
export function streamChunked(query: Query, jobId: string, version: number, part: Part, byteLength: number): Readable {
  let idx = 0, sent = 0;
  return new Readable({
    highWaterMark: 1,
    read() {
      if (sent >= byteLength) { this.push(null); return; }
      query(SELECT_CHUNK, [jobId, version, part, idx++]).then((rows) => {
        const b = rows[0]?.bytes;
        if (!b || b.byteLength === 0) { this.destroy(new Error(`chunk ${idx - 1} of ${part} of version ${version} of job ${jobId} is gone (retention dropped the version?)`)); return; }
        sent += b.byteLength;
        this.push(b);
      }, (e: Error) => this.destroy(e));
    },
  });
}
