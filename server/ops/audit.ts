// The audit log: an append-only, hash-chained record of what humans and the relay decided (job
// submissions, approvals, pauses, rollbacks, accepted rounds, token changes). Each entry commits to the
// hash of the one before, so editing or deleting one breaks the chain from there on; `verifyAudit`
// recomputes it. A plain chain gives tamper evidence, not proofs: dropping the newest entries goes unseen
// unless someone kept the head hash (research/anchors-robustness.md).
import type Database from 'better-sqlite3';
import { GENESIS_HASH, entryHash } from '../store/audit-chain.ts';
import { migrateAuditTable, sqliteOps } from '../store/sqlite-ops.ts';
import type { AuditAction, AuditEntry, AuditRecord } from '../store/ops-types.ts';

export type { AuditAction, AuditEntry };
export { GENESIS_HASH, entryHash };

export const migrateAudit = (db: Database.Database): void => migrateAuditTable(db);

/** Appends one entry inside an immediate transaction, so two writers (relay and CLI) never fork the chain. */
export function appendAudit(
  db: Database.Database,
  e: { actor: string; action: AuditAction; jobId?: string | null; detail?: unknown },
  now = Date.now(),
): AuditEntry {
  return sqliteOps(db).appendAudit(e, now);
}

/** Entries after a sequence number, oldest first. `viewer`: a researcher's token id, for what a
 * researcher may read (docs/jobs.md): entries about approved jobs and about its own, none about other
 * researchers' pending jobs, and token entries without other tokens' names and ids. Operators pass none. */
export function listAudit(db: Database.Database, opts: { afterSeq?: number; limit?: number; jobId?: string; viewer?: string } = {}): AuditEntry[] {
  return auditView(sqliteOps(db).listAudit({ afterSeq: opts.afterSeq, limit: auditLimit(opts.limit), jobId: opts.jobId, visibleTo: opts.viewer }), opts.viewer);
}

export const auditLimit = (limit?: number): number => Math.min(Math.max(limit ?? 100, 1), 1000);

/** What a viewer sees of entries the store selected for it: token entries redacted. */
export const auditView = (entries: AuditEntry[], viewer?: string): AuditEntry[] =>
  viewer === undefined ? entries : entries.map((e) => redactToken(e, viewer));

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

/** Where a walk along the chain stands: the hash the next entry must name, its seq, entries seen. */
type Walk = { prevHash: string; expectSeq: number; entries: number };
const startWalk = (): Walk => ({ prevHash: GENESIS_HASH, expectSeq: 1, entries: 0 });

/** Checks one page of entries, moving the walk on; the first entry that does not hold ends it. */
function walkPage(w: Walk, rows: AuditRecord[]): AuditVerdict | undefined {
  for (const r of rows) {
    const v = checkEntry(r, w.expectSeq, w.prevHash, ++w.entries);
    if (v) return v;
    w.prevHash = r.hash;
    w.expectSeq = r.seq + 1;
  }
  return undefined;
}

/** Recomputes the whole chain, page by page, and names the first entry that does not hold. */
export async function verifyChain(page: (afterSeq: number, limit: number) => AuditRecord[] | Promise<AuditRecord[]>): Promise<AuditVerdict> {
  const w = startWalk();
  for (;;) {
    const rows = await page(w.expectSeq - 1, 10_000);
    if (rows.length === 0) return { ok: true, entries: w.entries, headHash: w.prevHash };
    const v = walkPage(w, rows);
    if (v) return v;
  }
}

function checkEntry(r: AuditRecord, expectSeq: number, prevHash: string, entries: number): AuditVerdict | undefined {
  const fail = (reason: string): AuditVerdict => ({ ok: false, entries, brokenSeq: r.seq, reason });
  if (r.seq !== expectSeq) return fail(`entry ${r.seq} follows entry ${expectSeq - 1}: entries ${expectSeq}..${r.seq - 1} are missing`);
  if (r.prevHash !== prevHash) return fail(`entry ${r.seq} says the previous hash is ${r.prevHash.slice(0, 12)}…, but entry ${r.seq - 1} hashes to ${prevHash.slice(0, 12)}…`);
  const want = entryHash({ seq: r.seq, at: r.at, actor: r.actor, action: r.action, jobId: r.jobId, detailText: r.detailText, prevHash: r.prevHash });
  if (want !== r.hash) return fail(`entry ${r.seq} (${r.action}) was changed after it was written: its content hashes to ${want.slice(0, 12)}…, stored ${r.hash.slice(0, 12)}…`);
  return undefined;
}

/** Recomputes the whole chain of a SQLite file's log (the CLI, tests). */
export function verifyAudit(db: Database.Database): AuditVerdict {
  const ops = sqliteOps(db);
  const w = startWalk();
  for (;;) {
    const rows = ops.auditRecords(w.expectSeq - 1, 10_000);
    if (rows.length === 0) return { ok: true, entries: w.entries, headHash: w.prevHash };
    const v = walkPage(w, rows);
    if (v) return v;
  }
}
