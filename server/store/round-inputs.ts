// What a round close reads, from a pool worker (server/pool/round.ts): the base checkpoint (params,
// momentum, residual) and each pending update's weight, samples and payload, read by the worker itself
// from the store the relay's paramsSource names (the SQLite file read-only, its payload files, or the
// shared Postgres database), so the event loop never reads, copies or holds a model-sized blob for a
// round. Read-only: what the round applied is written by the main thread's commit (RelayStore.commitRound).
import { dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { checkpointPath, readPart, type CheckpointPart, type FileParts } from './checkpoint-files.ts';
import { openPayloadDir } from './payloads.ts';
import { readChunked, type ChunkedParts } from './postgres/chunks.ts';
import { isPostgresUrl } from './postgres/params.ts';

/** A version's checkpoint as a round starts from it (momentum zeros and residual absent at version 0). */
export type BaseCheckpoint = { params: Float32Array; momentum: Float32Array; residual?: Float32Array };
/** One pending update as a round folds it; undefined when applied meanwhile, 'lost' when its payload file is gone. */
export type PendingInput = { weight: number; samples: number; payload: Uint8Array } | 'lost' | undefined;

export type RoundInputs = {
  /** `spare`: model-sized arrays the caller no longer needs; a part read from a file is read into one of
   * them (taken out of the list) rather than a new allocation. */
  checkpoint(jobId: string, version: number, spare?: Float32Array[]): Promise<BaseCheckpoint>;
  pending(taskId: string): Promise<PendingInput>;
  /** A pending update's weight and samples only (a close that holds it decoded already, ../pool/prefold.ts). */
  pendingMeta(taskId: string): Promise<{ weight: number; samples: number; payload?: undefined } | undefined>;
  close(): void;
};

/** Copies when the bytes are not 4-aligned (a Float32Array view needs them to be). */
const floats = (b: Buffer): Float32Array =>
  b.byteOffset % 4 === 0 ? new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4) : new Float32Array(new Uint8Array(b).buffer);
/** `zeros`: a zeroed array of n values (a spare one when the caller has it) for version 0's momentum. */
const base = (params: Buffer, momentum: Buffer, residual: Buffer | null, zeros: (n: number) => Float32Array = (n) => new Float32Array(n)): BaseCheckpoint => {
  const p = floats(params);
  return { params: p, momentum: momentum.byteLength === 0 ? zeros(p.length) : floats(momentum), ...(residual ? { residual: floats(residual) } : {}) };
};
const gone = (jobId: string, version: number) => new Error(`version ${version} of job ${jobId} is no longer stored`);
type Row = { params: Buffer; momentum: Buffer; residual: Buffer | null; external: string | null };
/** A large version's parts live outside its row (files beside SQLite, chunk rows on Postgres): the row's
 * column is then empty, so each named part is read from where it lives, or the round fails (never zeros). */
async function withExternal(row: Row, jobId: string, v: number, read: (part: CheckpointPart, bytes: number) => Promise<Uint8Array | undefined>, zeros?: (n: number) => Float32Array): Promise<BaseCheckpoint> {
  if (row.external === null) return base(row.params, row.momentum, row.residual, zeros);
  const sizes = JSON.parse(row.external) as FileParts & ChunkedParts;
  const part = async (name: 'params' | 'momentum' | 'residual', inRow: Buffer | null): Promise<Buffer | null> => {
    const size = sizes[name];
    if (size === undefined) return inRow;
    const b = await read(name, size);
    if (!b) throw new Error(`the ${name} of version ${v} of job ${jobId} are missing or truncated`);
    return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  };
  return base((await part('params', row.params))!, (await part('momentum', row.momentum))!, await part('residual', row.residual), zeros);
}

/** Readers over the database `db` names: a postgres:// URL or a SQLite file. */
export function roundInputs(db: string): RoundInputs {
  return isPostgresUrl(db) ? postgresInputs(db) : sqliteInputs(db);
}

function sqliteInputs(file: string): RoundInputs {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  const payloads = openPayloadDir(join(dirname(file), 'payloads'), false);
  const checkpoints = join(dirname(file), 'checkpoints');
  const version = db.prepare<[string, number], Row>(
    'SELECT params, momentum, residual, external_parts AS external FROM versions WHERE job_id = ? AND version = ?');
  const update = db.prepare<[string], { weight: number; samples: number; payload: Buffer; payload_bytes: number }>(
    'SELECT weight, samples, payload, payload_bytes FROM updates WHERE task_id = ? AND applied_in IS NULL AND discarded = 0');
  const meta = db.prepare<[string], { weight: number; samples: number }>(
    'SELECT weight, samples FROM updates WHERE task_id = ? AND applied_in IS NULL AND discarded = 0');
  return {
    async checkpoint(jobId, v, spare = []) {
      const r = version.get(jobId, v);
      if (!r) throw gone(jobId, v);
      const take = (bytes: number): Float32Array | undefined => { const at = spare.findIndex((x) => x.byteLength === bytes); return at < 0 ? undefined : spare.splice(at, 1)[0]; };
      return withExternal(r, jobId, v, async (part, bytes) => {
        const into = take(bytes);
        return readPart(checkpointPath(checkpoints, jobId, v, part), bytes, into && new Uint8Array(into.buffer, into.byteOffset, into.byteLength));
      }, (n) => take(4 * n)?.fill(0) ?? new Float32Array(n));
    },
    async pending(taskId) {
      const r = update.get(taskId);
      if (!r) return undefined;
      // small payloads stay in their row, large ones are files beside the database (./payloads.ts)
      const payload = r.payload.byteLength > 0 ? new Uint8Array(r.payload.buffer, r.payload.byteOffset, r.payload.byteLength) : payloads.get(taskId, r.payload_bytes);
      return payload ? { weight: r.weight, samples: r.samples, payload } : 'lost';
    },
    pendingMeta: async (taskId) => meta.get(taskId),
    close: () => db.close(),
  };
}

/** One small pool per worker and database (a worker closes many rounds). */
const pgPools = new Map<string, pg.Pool>();

function postgresInputs(url: string): RoundInputs {
  let pool = pgPools.get(url);
  if (!pool) {
    pool = new pg.Pool({ connectionString: url, max: 1, idleTimeoutMillis: 10_000, connectionTimeoutMillis: 5000, application_name: 'tabtrain-round' });
    pool.on('error', () => undefined);
    pgPools.set(url, pool);
  }
  const p = pool;
  return {
    async checkpoint(jobId, v) {
      const r = (await p.query<Row>(
        'SELECT params, momentum, residual, external_parts AS external FROM versions WHERE job_id = $1 AND version = $2', [jobId, v])).rows[0];
      if (!r) throw gone(jobId, v);
      return withExternal(r, jobId, v, (part, bytes) => readChunked(async (sql, args) => (await p.query<{ bytes: Buffer }>(sql, args)).rows, jobId, v, part, bytes));
    },
    async pending(taskId) {
      // payloads live in their rows there: never lost
      const r = (await p.query<{ weight: number; samples: number; payload: Buffer }>(
        'SELECT weight, samples, payload FROM updates WHERE task_id = $1 AND applied_in IS NULL AND discarded = 0', [taskId])).rows[0];
      return r && { weight: Number(r.weight), samples: Number(r.samples), payload: new Uint8Array(r.payload.buffer, r.payload.byteOffset, r.payload.byteLength) };
    },
    async pendingMeta(taskId) {
      const r = (await p.query<{ weight: number; samples: number }>(
        'SELECT weight, samples FROM updates WHERE task_id = $1 AND applied_in IS NULL AND discarded = 0', [taskId])).rows[0];
      return r && { weight: Number(r.weight), samples: Number(r.samples) };
    },
    close: () => undefined, // the pool is shared by every round on this database
  };
}

/** The readers a worker keeps open (a test process runs several relays), the newest few. */
const cached = new Map<string, RoundInputs>();
export function cachedRoundInputs(db: string): RoundInputs {
  let r = cached.get(db);
  if (!r) {
    r = roundInputs(db);
    cached.set(db, r);
    if (cached.size > 4) { const [name, old] = cached.entries().next().value!; old.close(); cached.delete(name); }
  }
  return r;
}
