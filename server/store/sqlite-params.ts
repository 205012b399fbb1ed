// How a pool worker (server/pool/worker.ts) gets a version's params from a ParamsSource the store gave
// (RelayStore.paramsSource): inline ones as they are; for the SQLite store, read-only from its file, so the
// relay's event loop never reads or copies a big blob. Another store names its own kind of source here.
import { dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import { checkpointPath, readPart, type FileParts } from './checkpoint-files.ts';
import type { ParamsSource } from './types.ts';

/** Read-only connections to relays' SQLite files (a test process runs several relays), the newest few. */
const connections = new Map<string, Database.Database>();

export function readParams(src: ParamsSource): Float32Array {
  if (src instanceof Float32Array) return src;
  let db = connections.get(src.db);
  if (!db) {
    db = new Database(src.db, { readonly: true, fileMustExist: true });
    connections.set(src.db, db);
    if (connections.size > 4) { const [file, old] = connections.entries().next().value!; old.close(); connections.delete(file); }
  }
  const r = db.prepare('SELECT params, external_parts AS files FROM versions WHERE job_id = ? AND version = ?').get(src.jobId, src.version) as { params: Buffer; files: string | null } | undefined;
  if (!r) throw new Error(`version ${src.version} of job ${src.jobId} is no longer stored`);
  // a large version's params are a file beside the database (./checkpoint-files.ts)
  const inFile = r.files === null ? undefined : (JSON.parse(r.files) as FileParts).params;
  if (inFile !== undefined) {
    const b = readPart(checkpointPath(join(dirname(src.db), 'checkpoints'), src.jobId, src.version, 'params'), inFile);
    if (!b) throw new Error(`the params file of version ${src.version} of job ${src.jobId} is missing or truncated`);
    return new Float32Array(b.buffer, 0, inFile / 4);
  }
  const b = r.params;
  return b.byteOffset % 4 === 0 ? new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4) : new Float32Array(new Uint8Array(b).buffer);
}
