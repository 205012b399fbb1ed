// The operator plugin's tables on the relay's SQLite file, synchronous (./async.ts makes them an
// OpsStore): job ownership and uploaded datasets (ops_jobs, ops_shards), API tokens by their secret's
// hash (ops_tokens) and the hash-chained audit log (ops_audit). The relay's own tables are never altered.
import type Database from 'better-sqlite3';
import { GENESIS_HASH, entryHash } from './audit-chain.ts';
import type { AuditAction, AuditEntry, AuditRecord, OpsJob, Role, TokenRow } from './ops-types.ts';

export function migrateAuditTable(db: Database.Database): void {
  db.exec(`CREATE TABLE IF NOT EXISTS ops_audit (
    seq INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    job_id TEXT,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
  );
  CREATE INDEX IF NOT EXISTS ops_audit_job ON ops_audit(job_id, seq);`);
}

export function migrateTokenTable(db: Database.Database): void {
  db.exec(`CREATE TABLE IF NOT EXISTS ops_tokens (
    id TEXT PRIMARY KEY,
    secret_hash TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL CHECK (role IN ('operator', 'researcher')),
    name TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
  );`);
}

export function migrateOpsTables(db: Database.Database): void {
  migrateAuditTable(db);
  migrateTokenTable(db);
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

/** Whether this SQLite file has an audit log at all (an offline tool pointed at the wrong directory). */
export const hasAuditTable = (db: Database.Database): boolean =>
  db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'ops_audit'").get() !== undefined;

type JobDb = { job_id: string; owner_token_id: string; owner_name: string; max_loss_rise: number; tokenizer: string | null; dataset_kind: 'labelled' | 'text'; submitted_at: number };
type AuditDb = { seq: number; at: number; actor: string; action: string; job_id: string | null; detail: string; prev_hash: string; hash: string };

const bytes = (b: Buffer) => new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
const toEntry = (r: AuditDb): AuditEntry => ({ seq: r.seq, at: r.at, actor: r.actor, action: r.action as AuditAction, jobId: r.job_id, detail: JSON.parse(r.detail), prevHash: r.prev_hash, hash: r.hash });

/** The ops tables' synchronous core; `db` must have run migrateOpsTables. */
export function sqliteOps(db: Database.Database) {
  const ops = {
    getOpsJob(jobId: string): OpsJob | undefined {
      const r = db.prepare('SELECT * FROM ops_jobs WHERE job_id = ?').get(jobId) as JobDb | undefined;
      return r && { jobId: r.job_id, ownerTokenId: r.owner_token_id, ownerName: r.owner_name, maxLossRise: r.max_loss_rise, tokenizer: r.tokenizer ? JSON.parse(r.tokenizer) : null, datasetKind: r.dataset_kind, submittedAt: r.submitted_at };
    },
    insertOpsJob(j: OpsJob, shards: Uint8Array[], heldOut: Uint8Array): void {
      db.transaction(() => {
        db.prepare('INSERT INTO ops_jobs VALUES (?, ?, ?, ?, ?, ?, ?)').run(j.jobId, j.ownerTokenId, j.ownerName, j.maxLossRise, j.tokenizer ? JSON.stringify(j.tokenizer) : null, j.datasetKind, j.submittedAt);
        const put = db.prepare('INSERT INTO ops_shards VALUES (?, ?, ?)');
        shards.forEach((b, i) => put.run(j.jobId, i, Buffer.from(b.buffer, b.byteOffset, b.byteLength)));
        put.run(j.jobId, -1, Buffer.from(heldOut.buffer, heldOut.byteOffset, heldOut.byteLength));
      })();
    },
    loadShards(jobId: string): { shards: Uint8Array[]; heldOut: Uint8Array } | undefined {
      const rows = db.prepare('SELECT shard, bytes FROM ops_shards WHERE job_id = ? ORDER BY shard').all(jobId) as { shard: number; bytes: Buffer }[];
      if (rows.length === 0) return undefined;
      return { shards: rows.filter((r) => r.shard >= 0).map((r) => bytes(r.bytes)), heldOut: bytes(rows.find((r) => r.shard === -1)!.bytes) };
    },
    loadHeldOut(jobId: string): Uint8Array | undefined {
      const r = db.prepare('SELECT bytes FROM ops_shards WHERE job_id = ? AND shard = -1').get(jobId) as { bytes: Buffer } | undefined;
      return r && bytes(r.bytes);
    },
    shardBytes: (jobId: string): number =>
      (db.prepare('SELECT COALESCE(SUM(LENGTH(bytes)), 0) AS n FROM ops_shards WHERE job_id = ?').get(jobId) as { n: number }).n,
    pendingJobsOf: (owner: string): string[] =>
      (db.prepare("SELECT o.job_id AS jobId FROM ops_jobs o JOIN jobs j ON j.job_id = o.job_id WHERE o.owner_token_id = ? AND j.status = 'pending'").all(owner) as { jobId: string }[]).map((r) => r.jobId),

    insertToken(t: { id: string; secretHash: string; role: Role; name: string }, now: number): void {
      db.prepare('INSERT INTO ops_tokens (id, secret_hash, role, name, created_at) VALUES (?, ?, ?, ?, ?)').run(t.id, t.secretHash, t.role, t.name, now);
    },
    revokeToken: (id: string, now: number): boolean =>
      db.prepare('UPDATE ops_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL').run(now, id).changes > 0,
    findToken: (secretHash: string): { id: string; role: Role; name: string } | undefined =>
      db.prepare('SELECT id, role, name FROM ops_tokens WHERE secret_hash = ? AND revoked_at IS NULL').get(secretHash) as { id: string; role: Role; name: string } | undefined,
    listTokens: (): TokenRow[] => (db.prepare('SELECT id, role, name, created_at, revoked_at FROM ops_tokens ORDER BY created_at').all() as { id: string; role: Role; name: string; created_at: number; revoked_at: number | null }[])
      .map((r) => ({ id: r.id, role: r.role, name: r.name, createdAt: r.created_at, revokedAt: r.revoked_at })),

    /** One immediate transaction (when not inside one already), so two writers (relay and CLI) never fork the chain. */
    appendAudit(e: { actor: string; action: AuditAction; jobId?: string | null; detail?: unknown }, now: number): AuditEntry {
      const tx = db.transaction(() => {
        const last = db.prepare('SELECT seq, hash FROM ops_audit ORDER BY seq DESC LIMIT 1').get() as { seq: number; hash: string } | undefined;
        const seq = (last?.seq ?? 0) + 1;
        const prevHash = last?.hash ?? GENESIS_HASH;
        const detailText = JSON.stringify(e.detail ?? {});
        const jobId = e.jobId ?? null;
        const hash = entryHash({ seq, at: now, actor: e.actor, action: e.action, jobId, detailText, prevHash });
        db.prepare('INSERT INTO ops_audit (seq, at, actor, action, job_id, detail, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
          .run(seq, now, e.actor, e.action, jobId, detailText, prevHash, hash);
        return { seq, at: now, actor: e.actor, action: e.action, jobId, detail: e.detail ?? {}, prevHash, hash } satisfies AuditEntry;
      });
      return tx.immediate();
    },
    listAudit(o: { afterSeq?: number; limit: number; jobId?: string; visibleTo?: string }): AuditEntry[] {
      const where = ['seq > ?'];
      const args: (string | number)[] = [o.afterSeq ?? 0];
      if (o.jobId) { where.push('job_id = ?'); args.push(o.jobId); }
      if (o.visibleTo !== undefined) {
        where.push(`(job_id IS NULL OR job_id IN (SELECT job_id FROM jobs WHERE status != 'pending')
          OR job_id IN (SELECT job_id FROM ops_jobs WHERE owner_token_id = ?))`);
        args.push(o.visibleTo);
      }
      return (db.prepare(`SELECT * FROM ops_audit WHERE ${where.join(' AND ')} ORDER BY seq LIMIT ?`).all(...args, o.limit) as AuditDb[]).map(toEntry);
    },
    auditRecords: (afterSeq: number, limit: number): AuditRecord[] =>
      (db.prepare('SELECT * FROM ops_audit WHERE seq > ? ORDER BY seq LIMIT ?').all(afterSeq, limit) as AuditDb[])
        .map((r) => ({ seq: r.seq, at: r.at, actor: r.actor, action: r.action, jobId: r.job_id, detailText: r.detail, prevHash: r.prev_hash, hash: r.hash })),
    countAudit: (): number => (db.prepare('SELECT COUNT(*) AS n FROM ops_audit').get() as { n: number }).n,
    guardrailRollbacksTo: (jobId: string, version: number, since: number): number =>
      (db.prepare(`SELECT COUNT(*) AS n FROM ops_audit WHERE job_id = ? AND action = 'job.guardrail' AND at >= ?
        AND json_extract(detail, '$.decision') = 'rollback' AND json_extract(detail, '$.toVersion') = ?`).get(jobId, since, version) as { n: number }).n,
  };
  return ops;
}
export type SqliteOps = ReturnType<typeof sqliteOps>;
