// The audit log: an append-only, hash-chained record of what humans and the relay decided (job
// submissions, approvals, pauses, rollbacks, accepted rounds, token changes). Each entry commits to the
// hash of the one before, so editing or deleting one breaks the chain from there on; `verifyAudit`
// recomputes it. A plain chain gives tamper evidence, not proofs: dropping the newest entries goes unseen
// unless someone kept the head hash (research/anchors-robustness.md).
import { createHash } from 'node:crypto';
import type Database from 'better-sqlite3';

export type AuditAction =
  | 'job.submit' | 'job.approve' | 'job.pause' | 'job.resume' | 'job.rollback' | 'job.guardrail' | 'job.finish' | 'job.extend'
  | 'round.accept' | 'token.create' | 'token.revoke';

export type AuditEntry = {
  seq: number;
  at: number;
  actor: string;
  action: AuditAction;
  jobId: string | null;
  detail: unknown;
  prevHash: string;
  hash: string;
};

type Row = { seq: number; at: number; actor: string; action: string; job_id: string | null; detail: string; prev_hash: string; hash: string };

export const GENESIS_HASH = '0'.repeat(64);

export function migrateAudit(db: Database.Database): void {
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

/** The hash an entry must have: sha-256 over its stored fields as text, in a fixed order, and the previous hash. */
export function entryHash(e: { seq: number; at: number; actor: string; action: string; jobId: string | null; detailText: string; prevHash: string }): string {
  const canonical = JSON.stringify([e.seq, e.at, e.actor, e.action, e.jobId, e.detailText, e.prevHash]);
  return createHash('sha256').update(canonical).digest('hex');
}

function toEntry(r: Row): AuditEntry {
  return { seq: r.seq, at: r.at, actor: r.actor, action: r.action as AuditAction, jobId: r.job_id, detail: JSON.parse(r.detail), prevHash: r.prev_hash, hash: r.hash };
}

/** Appends one entry inside an immediate transaction, so two writers (relay and CLI) never fork the chain. */
export function appendAudit(
  db: Database.Database,
  e: { actor: string; action: AuditAction; jobId?: string | null; detail?: unknown },
  now = Date.now(),
): AuditEntry {
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
}

/** Entries after a sequence number, oldest first. `viewer`: a researcher's token id, for what a
 * researcher may read (docs/jobs.md): entries about approved jobs and about its own, none about other
 * researchers' pending jobs, and token entries without other tokens' names and ids. Operators pass none. */
export function listAudit(db: Database.Database, opts: { afterSeq?: number; limit?: number; jobId?: string; viewer?: string } = {}): AuditEntry[] {
  const limit = Math.min(Math.max(opts.limit ?? 100, 1), 1000);
  const where = ['seq > ?'];
  const args: (string | number)[] = [opts.afterSeq ?? 0];
  if (opts.jobId) { where.push('job_id = ?'); args.push(opts.jobId); }
  const viewer = opts.viewer;
  if (viewer !== undefined) {
    where.push(`(job_id IS NULL OR job_id IN (SELECT job_id FROM jobs WHERE status != 'pending')
      OR job_id IN (SELECT job_id FROM ops_jobs WHERE owner_token_id = ?))`);
    args.push(viewer);
  }
  const rows = db.prepare(`SELECT * FROM ops_audit WHERE ${where.join(' AND ')} ORDER BY seq LIMIT ?`).all(...args, limit);
  const entries = (rows as Row[]).map(toEntry);
  return viewer === undefined ? entries : entries.map((e) => redactToken(e, viewer));
}

/** A token entry as a researcher sees it: its own token in full, another's by role only. */
function redactToken(e: AuditEntry, viewer: string): AuditEntry {
  if (e.action !== 'token.create' && e.action !== 'token.revoke') return e;
  const d = e.detail as { tokenId?: string; role?: string };
  if (d.tokenId === viewer) return e;
  return { ...e, detail: d.role ? { role: d.role, redacted: true } : { redacted: true } };
}

export type AuditVerdict =
  | { ok: true; entries: number; headHash: string }
  | { ok: false; entries: number; brokenSeq: number; reason: string };

/** Recomputes the whole chain and names the first entry that does not hold. */
export function verifyAudit(db: Database.Database): AuditVerdict {
  let prevHash = GENESIS_HASH, expectSeq = 1, entries = 0;
  for (const r of db.prepare('SELECT * FROM ops_audit ORDER BY seq').iterate() as IterableIterator<Row>) {
    entries++;
    const fail = (reason: string): AuditVerdict => ({ ok: false, entries, brokenSeq: r.seq, reason });
    if (r.seq !== expectSeq) return fail(`entry ${r.seq} follows entry ${expectSeq - 1}: entries ${expectSeq}..${r.seq - 1} are missing`);
    if (r.prev_hash !== prevHash) return fail(`entry ${r.seq} says the previous hash is ${r.prev_hash.slice(0, 12)}…, but entry ${r.seq - 1} hashes to ${prevHash.slice(0, 12)}…`);
    const want = entryHash({ seq: r.seq, at: r.at, actor: r.actor, action: r.action, jobId: r.job_id, detailText: r.detail, prevHash: r.prev_hash });
    if (want !== r.hash) return fail(`entry ${r.seq} (${r.action}) was changed after it was written: its content hashes to ${want.slice(0, 12)}…, stored ${r.hash.slice(0, 12)}…`);
    prevHash = r.hash;
    expectSeq++;
  }
  return { ok: true, entries, headHash: prevHash };
}
