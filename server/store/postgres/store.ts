// The shared store: the same interface as the embedded SQLite store, on a Postgres server several relays
// use at once. What keeps them from stepping on each other, method by method:
// - commitRound bumps the version conditionally (WHERE version = next − 1): of two relays closing the same
//   round, one commits and the other's bump matches no row, so it commits nothing and throws;
// - expireDueTasks and takeReissue claim rows with FOR UPDATE SKIP LOCKED, so a task is expired once and
//   re-issued once, whichever relay sweeps;
// - counters (pending updates, issued tasks, the shard cursor) are updated in place (x = x + 1), never
//   read, changed and written back;
// - every multi-row change is one statement or one transaction: a relay killed mid-way leaves nothing half-done.
// Binary payloads live in their rows (bytea). New versions and job-state changes are announced with
// NOTIFY (./notify.ts) when their transaction commits.
import type pg from 'pg';
import type { Eval, JobStatus } from '../../../shared/protocol/messages.ts';
import { transitionJob } from '../../scheduler/job-state.ts';
import { RelayError } from '../../errors.ts';
import { missingVersionMessage } from '../retention.ts';
import type { DeltaInfo, JobRow, JobSpec, TaskRow, UpdateRow, VersionRow } from '../types.ts';
import type { AsyncStore } from './async-store.ts';
import { CHANNEL } from './notify.ts';

const bytes = (a: ArrayBufferView): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
/** Copies, so the Float32Array is aligned and owns its memory. */
const floats = (b: Buffer): Float32Array => new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));

type JobDb = { job_id: string; spec: string; status: JobStatus; version: number; round_started_at: number; created_at: number };
type TaskDb = {
  task_id: string; job_id: string; volunteer_id: string; base_version: number; shard: number; seed: number; state: TaskRow['state'];
  issued_at: number; expires_at: number; reissue_of: string | null; payload_hash: string | null; ack: string | null;
};
type UpdateDb = {
  task_id: string; job_id: string; volunteer_id: string; base_version: number; round: number; weight: number; payload?: Buffer;
  payload_hash: string; losses: string; samples: number; compute_ms: number; accepted_at: number; norm: number;
};

const jobRow = (r: JobDb): JobRow => ({
  ...(JSON.parse(r.spec) as JobSpec), jobId: r.job_id, status: r.status, version: r.version, roundStartedAt: r.round_started_at, createdAt: r.created_at,
});
const taskRow = (r: TaskDb): TaskRow => ({
  taskId: r.task_id, jobId: r.job_id, volunteerId: r.volunteer_id, baseVersion: r.base_version, shard: r.shard, seed: r.seed,
  state: r.state, issuedAt: r.issued_at, expiresAt: r.expires_at, reissueOf: r.reissue_of, payloadHash: r.payload_hash, ack: r.ack,
});
const updateMeta = (r: UpdateDb): Omit<UpdateRow, 'payload'> => ({
  taskId: r.task_id, jobId: r.job_id, volunteerId: r.volunteer_id, baseVersion: r.base_version, round: r.round, weight: r.weight,
  payloadHash: r.payload_hash, losses: JSON.parse(r.losses) as number[], samples: r.samples, computeMs: r.compute_ms, acceptedAt: r.accepted_at,
  norm: r.norm,
});
const updateRow = (r: UpdateDb): UpdateRow => ({ ...updateMeta(r), payload: new Uint8Array(r.payload!) });

const TASK_COLS = 'task_id, job_id, volunteer_id, base_version, shard, seed, state, issued_at, expires_at, reissue_of, payload_hash, ack';
const UPDATE_META = 'task_id, job_id, volunteer_id, base_version, round, weight, payload_hash, losses, samples, compute_ms, accepted_at, norm';

export type PostgresStore = AsyncStore & { readonly pool: pg.Pool };

/** Runs fn in one transaction on one connection; rolls back on any error. */
export async function inTransaction<T>(pool: pg.Pool, fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
  const c = await pool.connect();
  try {
    await c.query('BEGIN');
    const out = await fn(c);
    await c.query('COMMIT');
    return out;
  } catch (e) {
    await c.query('ROLLBACK').catch(() => undefined);
    throw e;
  } finally {
    c.release();
  }
}

/** The store on an open, migrated pool (./migrate.ts); closing the store ends the pool. */
export function createPostgresStore(pool: pg.Pool): PostgresStore {
  const one = async <R extends pg.QueryResultRow>(sql: string, args: unknown[]): Promise<R | undefined> => (await pool.query<R>(sql, args)).rows[0];
  const all = async <R extends pg.QueryResultRow>(sql: string, args: unknown[]): Promise<R[]> => (await pool.query<R>(sql, args)).rows;
  const notify = (c: pg.PoolClient | pg.Pool, event: Record<string, unknown>) => c.query('SELECT pg_notify($1, $2)', [CHANNEL, JSON.stringify(event)]);
  const mustJob = async (jobId: string): Promise<JobRow> => (await store.getJob(jobId)) ?? (() => { throw new RelayError('TT_ERR_UNKNOWN_JOB', jobId); })();

  const store: PostgresStore = {
    pool,
    async createJob(jobId, spec, status, initial, now) {
      await inTransaction(pool, async (c) => {
        await c.query('INSERT INTO jobs (job_id, spec, status, version, round_started_at, created_at) VALUES ($1, $2, $3, 0, $4, $4)',
          [jobId, JSON.stringify(spec), status, now]);
        // version 0's momentum is all zeros: stored empty (read back as zeros)
        await c.query('INSERT INTO versions (job_id, version, hash, params, momentum, created_at) VALUES ($1, 0, $2, $3, $4, $5)',
          [jobId, initial.hash, bytes(initial.params), Buffer.alloc(0), now]);
        await notify(c, { kind: 'job', jobId, status, version: 0 });
      });
      return (await store.getJob(jobId))!;
    },
    async getJob(jobId) {
      const r = await one<JobDb>('SELECT * FROM jobs WHERE job_id = $1', [jobId]);
      return r && jobRow(r);
    },
    async listJobs(status) {
      const rows = status
        ? await all<JobDb>('SELECT * FROM jobs WHERE status = $1 ORDER BY created_at, job_id', [status])
        : await all<JobDb>('SELECT * FROM jobs ORDER BY created_at, job_id', []);
      return rows.map(jobRow);
    },
    async setJobStatus(jobId, status) {
      // the row is locked while the transition is checked: two relays cannot both move it from one state
      const row = await inTransaction(pool, async (c) => {
        const cur = (await c.query<JobDb>('SELECT * FROM jobs WHERE job_id = $1 FOR UPDATE', [jobId])).rows[0];
        if (!cur) throw new RelayError('TT_ERR_UNKNOWN_JOB', jobId);
        transitionJob(cur.status, status);
        const r = (await c.query<JobDb>('UPDATE jobs SET status = $1, round_started_at = $2 WHERE job_id = $3 RETURNING *', [status, Date.now(), jobId])).rows[0];
        await notify(c, { kind: 'job', jobId, status, version: r.version });
        return r;
      });
      return jobRow(row);
    },
    async rollback(jobId, version, now) {
      const job = await mustJob(jobId);
      if (!(await store.versionHash(jobId, version))) {
        throw new RelayError('TT_ERR_UNKNOWN_VERSION', missingVersionMessage(jobId, version, job.version, await store.listVersions(jobId)));
      }
      const row = await inTransaction(pool, async (c) => {
        await c.query('SELECT 1 FROM jobs WHERE job_id = $1 FOR UPDATE', [jobId]);
        await c.query('DELETE FROM versions WHERE job_id = $1 AND version > $2', [jobId, version]);
        await c.query('DELETE FROM evals WHERE job_id = $1 AND version > $2', [jobId, version]);
        await c.query('UPDATE updates SET discarded = 1 WHERE job_id = $1 AND (applied_in IS NULL OR applied_in > $2)', [jobId, version]);
        const r = (await c.query<JobDb>('UPDATE jobs SET version = $1, round_started_at = $2, pending_updates = 0 WHERE job_id = $3 RETURNING *', [version, now, jobId])).rows[0];
        await notify(c, { kind: 'job', jobId, status: r.status, version, rollback: true });
        return r;
      });
      return jobRow(row);
    },
    async getVersion(jobId, version) {
      const r = await one<{ job_id: string; version: number; hash: string; params: Buffer; momentum: Buffer; residual: Buffer | null; created_at: number }>(
        'SELECT job_id, version, hash, params, momentum, residual, created_at FROM versions WHERE job_id = $1 AND version = $2', [jobId, version]);
      return r && {
        jobId: r.job_id, version: r.version, hash: r.hash, params: floats(r.params),
        momentum: r.momentum.length === 0 ? new Float32Array(r.params.length / 4) : floats(r.momentum),
        ...(r.residual ? { residual: floats(r.residual) } : {}), createdAt: r.created_at,
      } satisfies VersionRow;
    },
    async getParams(jobId, version) {
      const r = await one<{ hash: string; params: Buffer }>('SELECT hash, params FROM versions WHERE job_id = $1 AND version = $2', [jobId, version]);
      return r && { hash: r.hash, params: floats(r.params) };
    },
    versionHash: async (jobId, version) => (await one<{ hash: string }>('SELECT hash FROM versions WHERE job_id = $1 AND version = $2', [jobId, version]))?.hash,
    listVersions: async (jobId) => (await all<{ version: number }>('SELECT version FROM versions WHERE job_id = $1 ORDER BY version', [jobId])).map((r) => r.version),
    async pruneHistory(jobId, upTo, every) {
      if (upTo < 1) return { checkpoints: 0, payloads: 0 };
      return inTransaction(pool, async (c) => {
        const checkpoints = (await c.query(`DELETE FROM versions WHERE job_id = $1 AND version > 0 AND version <= $2 AND version % $3 != 0
          AND version IS DISTINCT FROM (SELECT version FROM evals WHERE job_id = $1 ORDER BY loss, version LIMIT 1)`, [jobId, upTo, every])).rowCount ?? 0;
        const payloads = (await c.query(`UPDATE updates SET payload = '\\x'::bytea, payload_kept = 0
          WHERE job_id = $1 AND payload_kept = 1 AND applied_in <= $2`, [jobId, upTo])).rowCount ?? 0;
        return { checkpoints, payloads };
      });
    },
    async commitRound(jobId, next, taskIds, now) {
      await inTransaction(pool, async (c) => {
        // the conditional bump takes the job's row lock: a second relay closing the same round waits here,
        // then finds the version moved and commits nothing
        const bumped = await c.query('UPDATE jobs SET version = $1, round_started_at = $2 WHERE job_id = $3 AND version = $4',
          [next.version, now, jobId, next.version - 1]);
        if (bumped.rowCount !== 1) {
          const cur = (await c.query<{ version: number }>('SELECT version FROM jobs WHERE job_id = $1', [jobId])).rows[0];
          throw new Error(`commitRound: job ${jobId} is at version ${cur?.version ?? '(no such job)'}, cannot commit ${next.version}`);
        }
        await c.query(`INSERT INTO versions (job_id, version, hash, params, momentum, created_at, delta, delta_sha256, residual)
          VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`, [jobId, next.version, next.hash, bytes(next.params), bytes(next.momentum), now,
          next.delta ? bytes(next.delta.bytes) : null, next.delta?.sha256 ?? null, next.residual ? bytes(next.residual) : null]);
        const applied = (await c.query('UPDATE updates SET applied_in = $1 WHERE task_id = ANY($2) AND job_id = $3 AND applied_in IS NULL AND discarded = 0',
          [next.version, taskIds, jobId])).rowCount ?? 0;
        await c.query('UPDATE jobs SET pending_updates = pending_updates - $1 WHERE job_id = $2', [applied, jobId]);
        await notify(c, { kind: 'version', jobId, version: next.version, hash: next.hash });
      });
    },
    async getDelta(jobId, version) {
      const r = await one<{ delta: Buffer | null }>('SELECT delta FROM versions WHERE job_id = $1 AND version = $2', [jobId, version]);
      return r?.delta ? new Uint8Array(r.delta) : undefined;
    },
    listDeltas: (jobId, from, to) => all<DeltaInfo>(`SELECT v.version AS version, octet_length(v.delta) AS bytes,
        v.delta_sha256 AS sha256, b.hash AS "baseHash" FROM versions v JOIN versions b ON b.job_id = v.job_id AND b.version = v.version - 1
        WHERE v.job_id = $1 AND v.version > $2 AND v.version <= $3 AND v.delta IS NOT NULL ORDER BY v.version`, [jobId, from, to]),
    async addVolunteer(id, agent, device, now) {
      await pool.query('INSERT INTO volunteers VALUES ($1, $2, $3, $4)', [id, agent, device, now]);
    },
    hasVolunteer: async (id) => (await one('SELECT 1 FROM volunteers WHERE volunteer_id = $1', [id])) !== undefined,
    async insertTask(t) {
      // one statement: the task and its job's live-task counter change together or not at all
      await pool.query(`WITH counted AS (UPDATE jobs SET issued_tasks = issued_tasks + 1 WHERE job_id = $2)
        INSERT INTO tasks (task_id, job_id, volunteer_id, base_version, shard, seed, state, issued_at, expires_at, reissue_of)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
      [t.taskId, t.jobId, t.volunteerId, t.baseVersion, t.shard, t.seed, t.state, t.issuedAt, t.expiresAt, t.reissueOf]);
    },
    async getTask(taskId) {
      const r = await one<TaskDb>(`SELECT ${TASK_COLS} FROM tasks WHERE task_id = $1`, [taskId]);
      return r && taskRow(r);
    },
    countLiveTasks: async (jobId) => (await one<{ n: number }>('SELECT issued_tasks AS n FROM jobs WHERE job_id = $1', [jobId]))?.n ?? 0,
    countLiveTasksOf: async (jobId, volunteerId, now) => (await one<{ n: number }>(`SELECT COUNT(*) AS n FROM tasks
      WHERE job_id = $1 AND state = 'issued' AND volunteer_id = $2 AND expires_at > $3`, [jobId, volunteerId, now]))!.n,
    async expireDueTasks(now) {
      // SKIP LOCKED: rows another relay is expiring (or accepting) right now are its business
      const rows = await all<TaskDb>(`WITH due AS (
          UPDATE tasks SET state = 'expired' WHERE state = 'issued' AND task_id IN (
            SELECT task_id FROM tasks WHERE state = 'issued' AND expires_at <= $1 FOR UPDATE SKIP LOCKED)
          RETURNING ${TASK_COLS}),
        counted AS (UPDATE jobs SET issued_tasks = issued_tasks - d.n
          FROM (SELECT job_id, COUNT(*) AS n FROM due GROUP BY job_id) d WHERE jobs.job_id = d.job_id)
        SELECT * FROM due ORDER BY expires_at, task_id`, [now]);
      return rows.map(taskRow);
    },
    async takeReissue(jobId) {
      const r = await one<TaskDb>(`UPDATE tasks SET reissued = 1 WHERE task_id = (
          SELECT task_id FROM tasks WHERE job_id = $1 AND state = 'expired' AND reissued = 0 ORDER BY expires_at, task_id LIMIT 1 FOR UPDATE SKIP LOCKED)
        AND reissued = 0 RETURNING ${TASK_COLS}`, [jobId]);
      return r && taskRow(r);
    },
    async rejectTask(taskId) {
      await pool.query(`WITH t AS (UPDATE tasks SET state = 'rejected' WHERE task_id = $1 AND state = 'issued' RETURNING job_id)
        UPDATE jobs SET issued_tasks = issued_tasks - 1 WHERE job_id IN (SELECT job_id FROM t)`, [taskId]);
    },
    async acceptUpdate(u, ack) {
      await inTransaction(pool, async (c) => {
        // locked first: a relay expiring this task at the same moment either finishes first (then the task is
        // no longer 'issued' and the live count was already taken down) or waits for this commit
        const was = (await c.query<{ state: string }>('SELECT state FROM tasks WHERE task_id = $1 FOR UPDATE', [u.taskId])).rows[0]?.state;
        await c.query(`INSERT INTO updates (task_id, job_id, volunteer_id, base_version, round, weight, payload, payload_bytes, payload_hash, losses,
            samples, compute_ms, accepted_at, norm) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
        [u.taskId, u.jobId, u.volunteerId, u.baseVersion, u.round, u.weight, bytes(u.payload), u.payload.byteLength, u.payloadHash,
          JSON.stringify(u.losses), u.samples, u.computeMs, u.acceptedAt, u.norm]);
        await c.query('UPDATE tasks SET state = \'accepted\', payload_hash = $1, ack = $2 WHERE task_id = $3', [u.payloadHash, ack, u.taskId]);
        await c.query('UPDATE jobs SET pending_updates = pending_updates + 1, issued_tasks = issued_tasks - $1 WHERE job_id = $2',
          [was === 'issued' ? 1 : 0, u.jobId]);
      });
    },
    pendingUpdates: async (jobId) => (await all<UpdateDb>(`SELECT ${UPDATE_META}, payload FROM updates
      WHERE job_id = $1 AND applied_in IS NULL AND discarded = 0 ORDER BY accepted_at, task_id`, [jobId])).map(updateRow),
    appliedUpdates: async (jobId, version) => (await all<UpdateDb>(`SELECT ${UPDATE_META}, payload FROM updates
      WHERE job_id = $1 AND applied_in = $2 AND payload_kept = 1 ORDER BY accepted_at, task_id`, [jobId, version])).map(updateRow),
    countPendingUpdates: async (jobId) => (await one<{ n: number }>('SELECT pending_updates AS n FROM jobs WHERE job_id = $1', [jobId]))?.n ?? 0,
    pendingNorms: async (jobId) => (await all<{ norm: number }>('SELECT norm FROM updates WHERE job_id = $1 AND applied_in IS NULL AND discarded = 0', [jobId])).map((r) => r.norm),
    listUpdates: async (jobId) => (await all<UpdateDb>(`SELECT ${UPDATE_META} FROM updates WHERE job_id = $1 ORDER BY accepted_at, task_id`, [jobId])).map(updateMeta),
    async nextShard(jobId, shards) {
      const r = await one<{ cursor: number }>('UPDATE jobs SET shard_cursor = shard_cursor + 1 WHERE job_id = $1 RETURNING shard_cursor - 1 AS cursor', [jobId]);
      if (!r) throw new RelayError('TT_ERR_UNKNOWN_JOB', jobId);
      return r.cursor % shards;
    },
    samplesApplied: async (jobId) => (await one<{ n: number }>(`SELECT COALESCE(SUM(samples), 0) AS n FROM updates
      WHERE job_id = $1 AND applied_in IS NOT NULL AND discarded = 0`, [jobId]))!.n,
    async setHyperparameters(jobId, h) {
      const job = await mustJob(jobId);
      const spec: JobSpec = { name: job.name, researcher: job.researcher, description: job.description, model: job.model, hyperparameters: h, dataset: job.dataset };
      const r = (await pool.query<JobDb>('UPDATE jobs SET spec = $1 WHERE job_id = $2 RETURNING *', [JSON.stringify(spec), jobId])).rows[0];
      await notify(pool, { kind: 'job', jobId, status: r.status, version: r.version });
      return jobRow(r);
    },
    async putEval(jobId, e) {
      await pool.query(`INSERT INTO evals VALUES ($1, $2, $3, $4, $5) ON CONFLICT (job_id, version)
        DO UPDATE SET loss = excluded.loss, accuracy = excluded.accuracy, at = excluded.at`, [jobId, e.version, e.loss, e.accuracy, e.at]);
    },
    listEvals: (jobId) => all<Eval>('SELECT version, loss, accuracy, at FROM evals WHERE job_id = $1 ORDER BY version', [jobId]),
    close: () => pool.end(),
  };
  return store;
}
