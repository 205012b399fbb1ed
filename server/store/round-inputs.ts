// What a round close reads, from a pool worker (server/pool/round.ts): the base checkpoint (params,
// momentum, residual) and each pending update's weight, samples and payload, read by the worker itself
// from the store the relay's paramsSource names (the SQLite file read-only, its payload files, or the
// shared Postgres database), so the event loop never reads, copies or holds a model-sized blob for a
// round. Read-only: what the round applied is written by the main thread's commit (RelayStore.commitRound).
import { dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { openPayloadDir } from './payloads.ts';
import { isPostgresUrl } from './postgres/params.ts';

/** A version's checkpoint as a round starts from it (momentum zeros and residual absent at version 0). */
export type BaseCheckpoint = { params: Float32Array; momentum: Float32Array; residual?: Float32Array };
/** One pending update as a round folds it; undefined when applied meanwhile, 'lost' when its payload file is gone. */
export type PendingInput = { weight: number; samples: number; payload: Uint8Array } | 'lost' | undefined;

export type RoundInputs = {
  checkpoint(jobId: string, version: number): Promise<BaseCheckpoint>;
  pending(taskId: string): Promise<PendingInput>;
  close(): void;
};

/** Copies when the bytes are not 4-aligned (a Float32Array view needs them to be). */
const floats = (b: Buffer): Float32Array =>
  b.byteOffset % 4 === 0 ? new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4) : new Float32Array(new Uint8Array(b).buffer);
const base = (params: Buffer, momentum: Buffer, residual: Buffer | null): BaseCheckpoint => {
  const p = floats(params);
  return { params: p, momentum: momentum.byteLength === 0 ? new Float32Array(p.length) : floats(momentum), ...(residual ? { residual: floats(residual) } : {}) };
};
const gone = (jobId: string, version: number) => new Error(`version ${version} of job ${jobId} is no longer stored`);

/** Readers over the database `db` names: a postgres:// URL or a SQLite file. */
export function roundInputs(db: string): RoundInputs {
  return isPostgresUrl(db) ? postgresInputs(db) : sqliteInputs(db);
}

function sqliteInputs(file: string): RoundInputs {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  const payloads = openPayloadDir(join(dirname(file), 'payloads'), false);
  const version = db.prepare<[string, number], { params: Buffer; momentum: Buffer; residual: Buffer | null }>(
    'SELECT params, momentum, residual FROM versions WHERE job_id = ? AND version = ?');
  const update = db.prepare<[string], { weight: number; samples: number; payload: Buffer; payload_bytes: number }>(
    'SELECT weight, samples, payload, payload_bytes FROM updates WHERE task_id = ? AND applied_in IS NULL AND discarded = 0');
  return {
    async checkpoint(jobId, v) {
      const r = version.get(jobId, v);
      if (!r) throw gone(jobId, v);
      return base(r.params, r.momentum, r.residual);
    },
    async pending(taskId) {
      const r = update.get(taskId);
      if (!r) return undefined;
      // small payloads stay in their row, large ones are files beside the database (./payloads.ts)
      const payload = r.payload.byteLength > 0 ? new Uint8Array(r.payload.buffer, r.payload.byteOffset, r.payload.byteLength) : payloads.get(taskId, r.payload_bytes);
      return payload ? { weight: r.weight, samples: r.samples, payload } : 'lost';
    },
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
      const r = (await p.query<{ params: Buffer; momentum: Buffer; residual: Buffer | null }>(
        'SELECT params, momentum, residual FROM versions WHERE job_id = $1 AND version = $2', [jobId, v])).rows[0];
      if (!r) throw gone(jobId, v);
      return base(r.params, r.momentum, r.residual);
    },
    async pending(taskId) {
      // payloads live in their rows there: never lost
      const r = (await p.query<{ weight: number; samples: number; payload: Buffer }>(
        'SELECT weight, samples, payload FROM updates WHERE task_id = $1 AND applied_in IS NULL AND discarded = 0', [taskId])).rows[0];
      return r && { weight: Number(r.weight), samples: Number(r.samples), payload: new Uint8Array(r.payload.buffer, r.payload.byteOffset, r.payload.byteLength) };
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
