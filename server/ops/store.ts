// The operator plugin's own tables on the relay's SQLite file (server/store/sqlite-ops.ts holds their
// SQL): who submitted each job (ownership), its guardrail threshold and tokenizer, and the shards of
// uploaded datasets. The relay's own tables are never altered.
import type Database from 'better-sqlite3';
import { migrateOpsTables, sqliteOps } from '../store/sqlite-ops.ts';
import type { OpsJob } from '../store/ops-types.ts';

export type { OpsJob };

export const migrateOps = (db: Database.Database): void => migrateOpsTables(db);

export const getOpsJob = (db: Database.Database, jobId: string): OpsJob | undefined => sqliteOps(db).getOpsJob(jobId);

export function insertOpsJob(db: Database.Database, j: OpsJob, shards: Uint8Array[], heldOut: Uint8Array): void {
  sqliteOps(db).insertOpsJob(j, shards, heldOut);
}

/** Training shards in order, and the held-out split, as stored. */
export const loadShards = (db: Database.Database, jobId: string): { shards: Uint8Array[]; heldOut: Uint8Array } | undefined => sqliteOps(db).loadShards(jobId);

/** The held-out split alone (an evaluation reads only it, not every training shard). */
export const loadHeldOut = (db: Database.Database, jobId: string): Uint8Array | undefined => sqliteOps(db).loadHeldOut(jobId);
