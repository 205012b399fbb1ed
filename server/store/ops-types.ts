// The operator plugin's state behind an asynchronous interface (see ./types.ts for the contract's
// conventions): who submitted each job and its uploaded dataset, API tokens (only their hashes), and
// the hash-chained audit log. Implemented for SQLite in ./sqlite-ops.ts.
import type { Tokenizer } from '../../shared/jobs/text.ts';

export type OpsJob = { jobId: string; ownerTokenId: string; ownerName: string; maxLossRise: number; tokenizer: Tokenizer | null; datasetKind: 'labelled' | 'text'; submittedAt: number };

export const ROLES = ['operator', 'researcher'] as const;
export type Role = (typeof ROLES)[number];
export type TokenRow = { id: string; role: Role; name: string; createdAt: number; revokedAt: number | null };

export type AuditAction =
  | 'job.submit' | 'job.approve' | 'job.pause' | 'job.resume' | 'job.rollback' | 'job.guardrail' | 'job.finish' | 'job.extend'
  | 'round.accept' | 'token.create' | 'token.revoke';

export type AuditEntry = {
  seq: number; at: number; actor: string; action: AuditAction; jobId: string | null; detail: unknown; prevHash: string; hash: string;
};
/** An entry as stored: its detail as the exact text that was hashed (what verification recomputes). */
export type AuditRecord = Omit<AuditEntry, 'detail' | 'action'> & { action: string; detailText: string };

export interface OpsStore {
  getOpsJob(jobId: string): Promise<OpsJob | undefined>;
  /** The job's ownership row and its dataset's shards (and held-out split), atomically. */
  insertOpsJob(j: OpsJob, shards: Uint8Array[], heldOut: Uint8Array): Promise<void>;
  /** Training shards in order, and the held-out split. */
  loadShards(jobId: string): Promise<{ shards: Uint8Array[]; heldOut: Uint8Array } | undefined>;
  /** The held-out split alone. */
  loadHeldOut(jobId: string): Promise<Uint8Array | undefined>;
  /** Bytes the job's stored shards hold. */
  shardBytes(jobId: string): Promise<number>;
  /** Jobs of this owner still waiting for approval (status pending). */
  pendingJobsOf(ownerTokenId: string): Promise<string[]>;

  /** Stores a token by its secret's hash; ConflictError when the id or hash exists. */
  insertToken(t: { id: string; secretHash: string; role: Role; name: string }, now: number): Promise<void>;
  /** Marks a live token revoked; false when there is none with that id. */
  revokeToken(id: string, now: number): Promise<boolean>;
  /** The live (not revoked) token whose secret hashes to this. */
  findToken(secretHash: string): Promise<{ id: string; role: Role; name: string } | undefined>;
  listTokens(): Promise<TokenRow[]>;

  /** Appends an entry to the chain (seq and hash computed against the current head, atomically). */
  appendAudit(e: { actor: string; action: AuditAction; jobId?: string | null; detail?: unknown }, now: number): Promise<AuditEntry>;
  /** Entries after `afterSeq`, oldest first, at most `limit`; `jobId` filters; `visibleTo`: only entries
   * without a job, about non-pending jobs or about jobs this token owns. */
  listAudit(o: { afterSeq?: number; limit: number; jobId?: string; visibleTo?: string }): Promise<AuditEntry[]>;
  /** Stored entries after `afterSeq` exactly as written, oldest first (for verifying the chain). */
  auditRecords(afterSeq: number, limit: number): Promise<AuditRecord[]>;
  countAudit(): Promise<number>;
  /** Guardrail rollbacks of the job to `version` audited at or after `since`. */
  guardrailRollbacksTo(jobId: string, version: number, since: number): Promise<number>;
}
