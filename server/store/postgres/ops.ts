// The operator plugin's state on Postgres (../ops-types.ts OpsStore). The audit log stays one chain
// however many relays append to it: each append takes a transaction-scoped advisory lock, reads the head
// and writes the next entry under it, so two appends never take the same seq or previous hash (the seq
// primary key would refuse the second anyway).
import type { Tokenizer } from '../../../shared/jobs/text.ts';
import { GENESIS_HASH, entryHash } from '../audit-chain.ts';
import { ConflictError } from '../errors.ts';
import type { AuditAction, AuditEntry, AuditRecord, OpsJob, OpsStore, Role, TokenRow } from '../ops-types.ts';
import type { Ctx } from './context.ts';

/** Advisory lock key of the audit chain's head (any constant unique to it). */
const AUDIT_LOCK = 0x6175_6474; // "audt"

type OpsJobDb = { job_id: string; owner_token_id: string; owner_name: string; max_loss_rise: number; tokenizer: string | null; dataset_kind: 'labelled' | 'text'; submitted_at: number };
type AuditDb = { seq: number; at: number; actor: string; action: string; job_id: string | null; detail: string; prev_hash: string; hash: string };

const view = (b: Buffer) => new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
const bytes = (a: Uint8Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
const entry = (r: AuditDb): AuditEntry => ({
  seq: r.seq, at: r.at, actor: r.actor, action: r.action as AuditAction, jobId: r.job_id, detail: JSON.parse(r.detail), prevHash: r.prev_hash, hash: r.hash,
});
const isUniqueViolation = (e: unknown) => (e as { code?: string }).code === '23505';

export function createOpsStore(c: Ctx): OpsStore {
  return {
    async getOpsJob(jobId) {
      const r = await c.one<OpsJobDb>('SELECT * FROM ops_jobs WHERE job_id = $1', [jobId]);
      return r && {
        jobId: r.job_id, ownerTokenId: r.owner_token_id, ownerName: r.owner_name, maxLossRise: r.max_loss_rise,
        tokenizer: r.tokenizer ? JSON.parse(r.tokenizer) as Tokenizer : null, datasetKind: r.dataset_kind, submittedAt: r.submitted_at,
      } satisfies OpsJob;
    },
    insertOpsJob: (j, shards, heldOut) => c.atomic(async (x) => {
      await x.run('INSERT INTO ops_jobs VALUES ($1, $2, $3, $4, $5, $6, $7)',
        [j.jobId, j.ownerTokenId, j.ownerName, j.maxLossRise, j.tokenizer ? JSON.stringify(j.tokenizer) : null, j.datasetKind, j.submittedAt]);
      const all = [...shards.map((b, i) => [i, b] as const), [-1, heldOut] as const];
      for (const [shard, b] of all) await x.run('INSERT INTO ops_shards VALUES ($1, $2, $3)', [j.jobId, shard, bytes(b)]);
    }),
    async loadShards(jobId) {
      const rows = await c.rows<{ shard: number; bytes: Buffer }>('SELECT shard, bytes FROM ops_shards WHERE job_id = $1 ORDER BY shard', [jobId]);
      const held = rows.find((r) => r.shard === -1);
      if (rows.length === 0 || !held) return undefined;
      return { shards: rows.filter((r) => r.shard >= 0).map((r) => view(r.bytes)), heldOut: view(held.bytes) };
    },
    async loadHeldOut(jobId) {
      const r = await c.one<{ bytes: Buffer }>('SELECT bytes FROM ops_shards WHERE job_id = $1 AND shard = -1', [jobId]);
      return r && view(r.bytes);
    },
    shardBytes: async (jobId) => (await c.one<{ n: number }>('SELECT COALESCE(SUM(octet_length(bytes)), 0) AS n FROM ops_shards WHERE job_id = $1', [jobId]))!.n,
    pendingJobsOf: async (owner) => (await c.rows<{ job_id: string }>(`SELECT o.job_id FROM ops_jobs o JOIN jobs j ON j.job_id = o.job_id
      WHERE o.owner_token_id = $1 AND j.status = 'pending' ORDER BY o.submitted_at, o.job_id`, [owner])).map((r) => r.job_id),

    async insertToken(t, now) {
      try {
        await c.run('INSERT INTO ops_tokens (id, secret_hash, role, name, created_at) VALUES ($1, $2, $3, $4, $5)', [t.id, t.secretHash, t.role, t.name, now]);
      } catch (e) {
        if (isUniqueViolation(e)) throw new ConflictError(`a token with id "${t.id}" or the same secret exists`);
        throw e;
      }
    },
    revokeToken: async (id, now) => (await c.run('UPDATE ops_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL', [now, id])) > 0,
    findToken: (secretHash) => c.one<{ id: string; role: Role; name: string }>('SELECT id, role, name FROM ops_tokens WHERE secret_hash = $1 AND revoked_at IS NULL', [secretHash]),
    listTokens: () => c.rows<TokenRow>('SELECT id, role, name, created_at AS "createdAt", revoked_at AS "revokedAt" FROM ops_tokens ORDER BY created_at, id'),

    appendAudit: (e, now) => c.atomic(async (x) => {
      await x.run('SELECT pg_advisory_xact_lock($1)', [AUDIT_LOCK]);
      const last = await x.one<{ seq: number; hash: string }>('SELECT seq, hash FROM ops_audit ORDER BY seq DESC LIMIT 1');
      const seq = (last?.seq ?? 0) + 1;
      const prevHash = last?.hash ?? GENESIS_HASH;
      const detailText = JSON.stringify(e.detail ?? {});
      const jobId = e.jobId ?? null;
      const hash = entryHash({ seq, at: now, actor: e.actor, action: e.action, jobId, detailText, prevHash });
      await x.run('INSERT INTO ops_audit (seq, at, actor, action, job_id, detail, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)',
        [seq, now, e.actor, e.action, jobId, detailText, prevHash, hash]);
      return { seq, at: now, actor: e.actor, action: e.action, jobId, detail: e.detail ?? {}, prevHash, hash };
    }),
    async listAudit(o) {
      const where = ['seq > $1'];
      const args: unknown[] = [o.afterSeq ?? 0];
      if (o.jobId !== undefined) { args.push(o.jobId); where.push(`job_id = $${args.length}`); }
      if (o.visibleTo !== undefined) {
        args.push(o.visibleTo);
        where.push(`(job_id IS NULL OR job_id IN (SELECT job_id FROM jobs WHERE status != 'pending')
          OR job_id IN (SELECT job_id FROM ops_jobs WHERE owner_token_id = $${args.length}))`);
      }
      args.push(o.limit);
      return (await c.rows<AuditDb>(`SELECT * FROM ops_audit WHERE ${where.join(' AND ')} ORDER BY seq LIMIT $${args.length}`, args)).map(entry);
    },
    auditRecords: async (afterSeq, limit) => (await c.rows<AuditDb>('SELECT * FROM ops_audit WHERE seq > $1 ORDER BY seq LIMIT $2', [afterSeq, limit]))
      .map((r): AuditRecord => ({ seq: r.seq, at: r.at, actor: r.actor, action: r.action, jobId: r.job_id, detailText: r.detail, prevHash: r.prev_hash, hash: r.hash })),
    countAudit: async () => (await c.one<{ n: number }>('SELECT COUNT(*) AS n FROM ops_audit'))!.n,
    guardrailRollbacksTo: async (jobId, version, since) => (await c.one<{ n: number }>(`SELECT COUNT(*) AS n FROM ops_audit
      WHERE job_id = $1 AND action = 'job.guardrail' AND at >= $2
      AND (detail::jsonb ->> 'decision') = 'rollback' AND (detail::jsonb -> 'toVersion') = to_jsonb($3::int)`, [jobId, since, version]))!.n,
  };
}
