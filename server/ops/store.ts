// The operator plugin's own tables on the relay's SQLite file: who submitted each job (ownership), its
// guardrail threshold and tokenizer, and the shards of uploaded datasets. Created by migrateOps; the
// relay's own tables are never altered.
import type Database from 'better-sqlite3';
import { migrateAudit } from './audit.ts';
import { migrateTokens } from './tokens.ts';
import type { Tokenizer } from '../../shared/jobs/text.ts';

export type OpsJob = { jobId: string; ownerTokenId: string; ownerName: string; maxLossRise: number; tokenizer: Tokenizer | null; datasetKind: 'labelled' | 'text'; submittedAt: number };

export function migrateOps(db: Database.Database): void {
  migrateAudit(db);
  migrateTokens(db);
  db.exec(`CREATE TABLE IF NOT EXISTS ops_jobs (
    job_id TEXT PRIMARY KEY,
    owner_token_id TEXT NOT NULL,
    owner_name TEXT NOT NULL,
    max_loss_rise REAL NOT NULL,
    tokenizer TEXT,
    dataset_kind TEXT NOT NULL CHECK (dataset_kind IN ('labelled', 'text')),
    submitted_at INTEGER NOT NULL
  );
  CREATE TABLE IF NOT EXISTS ops_shards (
    job_id TEXT NOT NULL,
    shard INTEGER NOT NULL, -- -1 is the held-out split
    bytes BLOB NOT NULL,
    PRIMARY KEY (job_id, shard)
  );`);
}

type Row = { job_id: string; owner_token_id: string; owner_name: string; max_loss_rise: number; tokenizer: string | null; dataset_kind: 'labelled' | 'text'; submitted_at: number };

export function getOpsJob(db: Database.Database, jobId: string): OpsJob | undefined {
  const r = db.prepare('SELECT * FROM ops_jobs WHERE job_id = ?').get(jobId) as Row | undefined;
  return r && { jobId: r.job_id, ownerTokenId: r.owner_token_id, ownerName: r.owner_name, maxLossRise: r.max_loss_rise, tokenizer: r.tokenizer ? JSON.parse(r.tokenizer) : null, datasetKind: r.dataset_kind, submittedAt: r.submitted_at };
}

export function insertOpsJob(db: Database.Database, j: OpsJob, shards: Uint8Array[], heldOut: Uint8Array): void {
  db.prepare('INSERT INTO ops_jobs VALUES (?, ?, ?, ?, ?, ?, ?)').run(j.jobId, j.ownerTokenId, j.ownerName, j.maxLossRise, j.tokenizer ? JSON.stringify(j.tokenizer) : null, j.datasetKind, j.submittedAt);
  const put = db.prepare('INSERT INTO ops_shards VALUES (?, ?, ?)');
  shards.forEach((b, i) => put.run(j.jobId, i, Buffer.from(b.buffer, b.byteOffset, b.byteLength)));
  put.run(j.jobId, -1, Buffer.from(heldOut.buffer, heldOut.byteOffset, heldOut.byteLength));
}

/** Training shards in order, and the held-out split, as stored. */
export function loadShards(db: Database.Database, jobId: string): { shards: Uint8Array[]; heldOut: Uint8Array } | undefined {
  const rows = db.prepare('SELECT shard, bytes FROM ops_shards WHERE job_id = ? ORDER BY shard').all(jobId) as { shard: number; bytes: Buffer }[];
  if (rows.length === 0) return undefined;
  const bytes = (b: Buffer) => new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  return { shards: rows.filter((r) => r.shard >= 0).map((r) => bytes(r.bytes)), heldOut: bytes(rows.find((r) => r.shard === -1)!.bytes) };
}

/** The held-out split alone (an evaluation reads only it, not every training shard). */
export function loadHeldOut(db: Database.Database, jobId: string): Uint8Array | undefined {
  const r = db.prepare('SELECT bytes FROM ops_shards WHERE job_id = ? AND shard = -1').get(jobId) as { bytes: Buffer } | undefined;
  return r && new Uint8Array(r.bytes.buffer, r.bytes.byteOffset, r.bytes.byteLength);
}
