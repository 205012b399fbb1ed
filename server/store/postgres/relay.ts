// The relay's own state on Postgres (../types.ts RelayStore). What keeps several relays on one database
// from stepping on each other:
// - commitRound bumps the version conditionally (WHERE version = next − 1) and holds the job's row lock to
//   its commit: of several relays closing one round, one commits, the others match no row and change nothing;
// - expireDueTasks, takeReissue, rejectTask and endLeases claim rows (FOR UPDATE SKIP LOCKED, or an UPDATE
//   whose WHERE re-checks the state), so each task ends, expires or is re-issued once, whichever relay asks;
// - the shard cursor changes in place (x = x + 1), never read, changed and written back; live tasks and
//   pending updates are counted from their rows (indexed), so no lease or upload writes a counter row
//   that every other one of the job's would wait for;
// - every multi-row change is one transaction: a relay killed mid-way leaves nothing half-done.
// Binary payloads (checkpoints, deltas, residuals, update payloads) live in their rows as bytea; a large
// checkpoint part as chunk rows beside its version (./chunks.ts).
import { readFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import type { Eval, Finish, JobStatus } from '../../../shared/protocol/messages.ts';
import { canTransition } from '../../../shared/protocol/job-states.ts';
import { ConflictError, IllegalTransitionError, NotFoundError } from '../errors.ts';
import { missingVersionMessage } from '../retention.ts';
import type {
  AcceptedUpdateEntry, CheckpointInfo, DeltaInfo, IssuedTaskEntry, JobRow, JobSpec, RelayStore, Seq, TaskRow, TaskState, UpdateRow, VersionRow,
} from '../types.ts';
import type { Ctx } from './context.ts';
import { INSERT_CHUNK, readChunked, splitParts, streamChunked, type ChunkedParts, type Part, type Query } from './chunks.ts';
import { groupCommit, type GroupCommit, type GroupCommitOptions, type ItemOutcome } from '../group-commit.ts';
import { isDatabaseUnavailable } from '../unavailable.ts';

/** A version's bytes, row and chunks: what retention by bytes adds up. */
const VERSION_BYTES = `(octet_length(params) + octet_length(momentum) + COALESCE(octet_length(residual), 0) + COALESCE(octet_length(delta), 0)
        + COALESCE((SELECT SUM(octet_length(k.bytes)) FROM version_chunks k WHERE k.job_id = versions.job_id AND k.version = versions.version), 0))`;

const bytes = (a: ArrayBufferView): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
/** Copies, so the Float32Array is aligned and owns its memory. */
const floats = (b: Uint8Array): Float32Array => (b instanceof Buffer
  ? new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength))
  : new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4)); // chunks read back own their ArrayBuffer

type JobDb = { job_id: string; spec: string; status: JobStatus; version: number; round_started_at: number; created_at: number };
type TaskDb = {
  task_id: string; job_id: string; volunteer_id: string; base_version: number; shard: number; seed: number; state: TaskState;
  issued_at: number; expires_at: number; reissue_of: string | null; payload_hash: string | null; ack: string | null;
};
type UpdateDb = {
  task_id: string; job_id: string; volunteer_id: string; base_version: number; round: number; weight: number; payload?: Buffer;
  payload_hash: string; losses: string; samples: number; compute_ms: number; accepted_at: number; norm: number;
};
type FinishDb = { rule: string; reason: string; released_version: number; released_hash: string; loss: number | null; accuracy: number | null; at: number };

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
const ended = (ts: TaskDb[]) => ts.map((t) => ({ taskId: t.task_id, jobId: t.job_id, volunteerId: t.volunteer_id }));

const TASK_COLS = 'task_id, job_id, volunteer_id, base_version, shard, seed, state, issued_at, expires_at, reissue_of, payload_hash, ack';
const UPDATE_META = 'task_id, job_id, volunteer_id, base_version, round, weight, payload_hash, losses, samples, compute_ms, accepted_at, norm';

const ACCEPT_COLS = 'task_id, job_id, volunteer_id, base_version, round, weight, payload, payload_bytes, payload_hash, losses, samples, compute_ms, accepted_at, norm';
/** One accepted update's statement parameters, in ACCEPT_COLS order and then its ack. */
const acceptArgs = (u: UpdateRow, ack: string): unknown[] => [u.taskId, u.jobId, u.volunteerId, u.baseVersion, u.round, u.weight, bytes(u.payload),
  u.payload.byteLength, u.payloadHash, JSON.stringify(u.losses), u.samples, u.computeMs, u.acceptedAt, u.norm, ack];
const ACCEPT_TYPES = ['text', 'text', 'text', 'int', 'int', 'float8', 'bytea', 'bigint', 'text', 'text', 'bigint', 'float8', 'bigint', 'float8', 'text'];

/** Several accepted updates in one statement (one commit): their tasks turn accepted and their rows are
 * stored; answers the task ids it stored (a task that does not exist matches no row). */
function acceptManySql(count: number): string {
  const rows = Array.from({ length: count }, (_, r) => `(${ACCEPT_TYPES.map((t, i) => `$${r * ACCEPT_TYPES.length + i + 1}${r === 0 ? `::${t}` : ''}`).join(', ')})`);
  return `WITH v (${ACCEPT_COLS}, ack) AS (VALUES ${rows.join(', ')}),
    t AS (UPDATE tasks SET state = 'accepted', payload_hash = v.payload_hash, ack = v.ack FROM v WHERE tasks.task_id = v.task_id RETURNING tasks.task_id)
    INSERT INTO updates (${ACCEPT_COLS}) SELECT ${ACCEPT_COLS.split(', ').map((col) => `v.${col}`).join(', ')} FROM v JOIN t ON t.task_id = v.task_id
    RETURNING task_id`;
}

export type RelayStoreOptions = {
  /** accepted updates written outside a transaction share a statement with those that arrive together
   * (../group-commit.ts); false: one statement each */
  groupCommit?: GroupCommitOptions | false;
  /** the batcher, for close to wait for batches still committing, and for its stats */
  onBatcher?: (b: GroupCommit<unknown, void>) => void;
};

/** `url`: where a pool worker reads params itself (server/pool/worker.ts). */
export function createRelayStore(c: Ctx, url: string, o: RelayStoreOptions = {}): RelayStore {
  const query = (x: Ctx): Query => (sql, args) => x.rows<{ bytes: Buffer }>(sql, args);
  /** Inserts the version's chunk rows (after its row: they reference it). */
  const putChunks = async (x: Ctx, jobId: string, version: number, chunks: ReturnType<typeof splitParts>['chunks']): Promise<void> => {
    for (const k of chunks) await x.run(INSERT_CHUNK, [jobId, version, k.part, k.idx, k.bytes]);
  };
  /** One part of a version: its row's bytes, or its chunks read back (undefined if they went meanwhile). */
  const part = async (jobId: string, version: number, chunked: string | null, name: Part, inRow: Buffer | null): Promise<Uint8Array | null | undefined> => {
    const size = chunked === null ? undefined : (JSON.parse(chunked) as ChunkedParts)[name];
    return size === undefined ? inRow : readChunked(query(c), jobId, version, name, size);
  };
  const lockedJob = async (x: Ctx, jobId: string): Promise<JobDb> =>
    (await x.one<JobDb>('SELECT * FROM jobs WHERE job_id = $1 FOR UPDATE', [jobId])) ?? (() => { throw new NotFoundError('job', jobId); })();

  // one statement: the task turns accepted and its update is stored together (a relay expiring the task
  // at the same moment either finished first or waits for this row lock)
  const acceptOne = async (x: Ctx, u: UpdateRow, ack: string): Promise<void> => {
    if ((await x.run(acceptManySql(1), acceptArgs(u, ack))) !== 1) throw new NotFoundError('task', u.taskId);
  };
  const acceptedEvent = (u: UpdateRow) => ({ jobId: u.jobId, taskId: u.taskId, volunteerId: u.volunteerId, samples: u.samples, bytes: u.payload.byteLength, at: u.acceptedAt });

  /** A batch of accepted updates as one statement, committed on its own. When it fails as a whole for a
   * reason of one row (the same task twice, a constraint), nothing of it was stored and each update is
   * then written alone, so each gets its own answer; a database that is down fails them all. */
  const acceptBatch = (items: { u: UpdateRow; ack: string }[]) => c.detached(() => acceptStatement(items));
  async function acceptStatement(items: { u: UpdateRow; ack: string }[]): Promise<ItemOutcome<void>[]> {
    let stored: Set<string>;
    try {
      const rows = await c.rows<{ task_id: string }>(acceptManySql(items.length), items.flatMap(({ u, ack }) => acceptArgs(u, ack)));
      stored = new Set(rows.map((r) => r.task_id));
    } catch (e) {
      if (items.length === 1 || (e instanceof Error && isDatabaseUnavailable(e))) throw e;
      return Promise.all(items.map(async ({ u, ack }): Promise<ItemOutcome<void>> => {
        try {
          await acceptOne(c, u, ack);
          await c.raised('update-accepted', acceptedEvent(u));
          return { ok: true, value: undefined };
        } catch (error) {
          return { ok: false, error };
        }
      }));
    }
    const out: ItemOutcome<void>[] = [];
    for (const { u } of items) {
      if (!stored.has(u.taskId)) { out.push({ ok: false, error: new NotFoundError('task', u.taskId) }); continue; }
      await c.raised('update-accepted', acceptedEvent(u));
      out.push({ ok: true, value: undefined });
    }
    return out;
  }
  // only the store itself batches: inside a transaction a write is part of that transaction
  const batched = c.tx || o.groupCommit === false ? undefined : groupCommit(acceptBatch, { concurrency: 2, ...o.groupCommit });
  if (batched) o.onBatcher?.(batched as GroupCommit<unknown, void>);

  const relay: RelayStore = {
    createJob: (jobId, spec, status, initial, now) => c.atomic(async (x) => {
      // ON CONFLICT: relays starting together may each create the default job; one does, the others hear so
      const r = await x.one<JobDb>(`INSERT INTO jobs (job_id, spec, status, version, round_started_at, created_at)
        VALUES ($1, $2, $3, 0, $4, $4) ON CONFLICT (job_id) DO NOTHING RETURNING *`, [jobId, JSON.stringify(spec), status, now]);
      if (!r) throw new ConflictError(`a job with id "${jobId}" exists`);
      // version 0's momentum is all zeros: stored empty (read back as zeros)
      const { row, chunked, chunks } = splitParts({ params: bytes(initial.params) }, c.shared.chunkBytes);
      await x.run('INSERT INTO versions (job_id, version, hash, params, momentum, created_at, external_parts) VALUES ($1, 0, $2, $3, $4, $5, $6)',
        [jobId, initial.hash, row.params, Buffer.alloc(0), now, chunked]);
      await putChunks(x, jobId, 0, chunks);
      const job = jobRow(r);
      await x.emit('job-created', { job });
      return job;
    }),
    async getJob(jobId) {
      const r = await c.one<JobDb>('SELECT * FROM jobs WHERE job_id = $1', [jobId]);
      return r && jobRow(r);
    },
    listJobs: async (status) => (status
      ? await c.rows<JobDb>('SELECT * FROM jobs WHERE status = $1 ORDER BY created_at, job_id', [status])
      : await c.rows<JobDb>('SELECT * FROM jobs ORDER BY created_at, job_id')).map(jobRow),
    // the row is locked while the transition is checked: two relays cannot both move it out of one state
    setJobStatus: (jobId, status, now) => c.atomic(async (x) => {
      const cur = await lockedJob(x, jobId);
      if (!canTransition(cur.status, status)) throw new IllegalTransitionError(jobId, cur.status, status);
      const r = (await x.one<JobDb>('UPDATE jobs SET status = $1, round_started_at = $2 WHERE job_id = $3 RETURNING *', [status, now, jobId]))!;
      await x.emit('job-state-changed', { jobId, from: cur.status, to: status, at: now });
      return jobRow(r);
    }),
    setHyperparameters: (jobId, h) => c.atomic(async (x) => {
      const job = jobRow(await lockedJob(x, jobId));
      const spec: JobSpec = { name: job.name, researcher: job.researcher, description: job.description, model: job.model, hyperparameters: h, dataset: job.dataset };
      const r = (await x.one<JobDb>('UPDATE jobs SET spec = $1 WHERE job_id = $2 RETURNING *', [JSON.stringify(spec), jobId]))!;
      await x.emit('hyperparameters-changed', { jobId, hyperparameters: h });
      return jobRow(r);
    }),
    rollback: (jobId, version, now) => c.atomic(async (x) => {
      const cur = await lockedJob(x, jobId);
      if (!(await x.one('SELECT 1 FROM versions WHERE job_id = $1 AND version = $2', [jobId, version]))) {
        const kept = (await x.rows<{ version: number }>('SELECT version FROM versions WHERE job_id = $1 ORDER BY version', [jobId])).map((v) => v.version);
        throw new NotFoundError('version', `${jobId}@${version}`, missingVersionMessage(jobId, version, cur.version, kept));
      }
      await x.run('DELETE FROM versions WHERE job_id = $1 AND version > $2', [jobId, version]);
      await x.run('DELETE FROM evals WHERE job_id = $1 AND version > $2', [jobId, version]);
      await x.run('UPDATE updates SET discarded = 1 WHERE job_id = $1 AND (applied_in IS NULL OR applied_in > $2)', [jobId, version]);
      const r = (await x.one<JobDb>('UPDATE jobs SET version = $1, round_started_at = $2 WHERE job_id = $3 RETURNING *', [version, now, jobId]))!;
      await x.emit('rolled-back', { jobId, from: cur.version, to: version, at: now });
      return jobRow(r);
    }),

    async getVersion(jobId, version) {
      const r = await c.one<{ job_id: string; version: number; hash: string; params: Buffer; momentum: Buffer; residual: Buffer | null; created_at: number; chunked: string | null }>(
        'SELECT job_id, version, hash, params, momentum, residual, created_at, external_parts AS chunked FROM versions WHERE job_id = $1 AND version = $2', [jobId, version]);
      if (!r) return undefined;
      const params = await part(jobId, version, r.chunked, 'params', r.params);
      const momentum = await part(jobId, version, r.chunked, 'momentum', r.momentum);
      const residual = await part(jobId, version, r.chunked, 'residual', r.residual);
      if (!params || !momentum || residual === undefined) return undefined;
      return {
        jobId: r.job_id, version: r.version, hash: r.hash, params: floats(params),
        momentum: momentum.byteLength === 0 ? new Float32Array(params.byteLength / 4) : floats(momentum),
        ...(residual ? { residual: floats(residual) } : {}), createdAt: r.created_at,
      } satisfies VersionRow;
    },
    async getParams(jobId, version) {
      const r = await c.one<{ hash: string; params: Buffer; chunked: string | null }>('SELECT hash, params, external_parts AS chunked FROM versions WHERE job_id = $1 AND version = $2', [jobId, version]);
      const params = r && await part(jobId, version, r.chunked, 'params', r.params);
      return params ? { hash: r!.hash, params: floats(params) } : undefined;
    },
    async paramsRead(jobId, version) {
      // the size first (no bytes read); then the params column alone, or its chunks one at a time
      const r = await c.one<{ hash: string; chunked: string | null; bytes: number }>(
        'SELECT hash, external_parts AS chunked, octet_length(params) AS bytes FROM versions WHERE job_id = $1 AND version = $2', [jobId, version]);
      if (!r) return undefined;
      const size = r.chunked === null ? undefined : (JSON.parse(r.chunked) as ChunkedParts).params;
      if (size !== undefined) return { hash: r.hash, bytes: size, stream: () => streamChunked(query(c), jobId, version, 'params', size) };
      const b = (await c.one<{ params: Buffer }>('SELECT params FROM versions WHERE job_id = $1 AND version = $2', [jobId, version]))?.params;
      return b && { hash: r.hash, bytes: b.byteLength, stream: () => Readable.from([b]) };
    },
    versionHash: async (jobId, version) => (await c.one<{ hash: string }>('SELECT hash FROM versions WHERE job_id = $1 AND version = $2', [jobId, version]))?.hash,
    listVersions: async (jobId) => (await c.rows<{ version: number }>('SELECT version FROM versions WHERE job_id = $1 ORDER BY version', [jobId])).map((r) => r.version),
    listCheckpoints: (jobId) => c.rows<CheckpointInfo>('SELECT version, hash, created_at AS at FROM versions WHERE job_id = $1 ORDER BY version', [jobId]),
    // the worker connects to the same database and reads the checkpoint itself
    paramsSource: (jobId, version) => ({ db: url, jobId, version }),
    // chunk rows are written by the commit itself (async I/O, in its transaction): nothing is staged here
    roundOutput: () => undefined,
    discardStaged: () => undefined,
    pruneHistory: async (jobId, upTo, every) => {
      if (upTo < 1) return { checkpoints: 0, payloads: 0 };
      return c.atomic(async (x) => {
        const checkpoints = await x.run(`DELETE FROM versions WHERE job_id = $1 AND version > 0 AND version <= $2 AND version % $3 != 0
          AND version IS DISTINCT FROM (SELECT version FROM evals WHERE job_id = $1 ORDER BY loss, version LIMIT 1)`, [jobId, upTo, every]);
        const payloads = await x.run(`UPDATE updates SET payload = '\\x'::bytea, payload_kept = 0
          WHERE job_id = $1 AND payload_kept = 1 AND applied_in <= $2`, [jobId, upTo]);
        return { checkpoints, payloads };
      });
    },
    pruneBytes: (jobId, budget, keepFrom) => c.atomic(async (x) => {
      // oldest first, never the staleness bound's versions, the rollback target or a done job's released version
      const candidates = await x.rows<{ version: number; bytes: number }>(`SELECT version, ${VERSION_BYTES} AS bytes FROM versions
        WHERE job_id = $1 AND version < $2
        AND version IS DISTINCT FROM (SELECT version FROM evals WHERE job_id = $1 ORDER BY loss, version LIMIT 1)
        AND version IS DISTINCT FROM (SELECT released_version FROM job_finish WHERE job_id = $1) ORDER BY version`, [jobId, keepFrom]);
      let total = (await x.one<{ n: number }>(`SELECT COALESCE(SUM(${VERSION_BYTES}), 0)::bigint AS n FROM versions WHERE job_id = $1`, [jobId]))!.n;
      const drop: number[] = [];
      let freed = 0;
      for (const v of candidates) {
        if (total <= budget) break;
        drop.push(v.version);
        total -= v.bytes;
        freed += v.bytes;
      }
      if (drop.length) await x.run('DELETE FROM versions WHERE job_id = $1 AND version = ANY($2)', [jobId, drop]);
      return { checkpoints: drop.length, bytes: freed };
    }),
    checkpointBytes: async (jobId) => (await c.one<{ n: number }>(`SELECT COALESCE(SUM(${VERSION_BYTES}), 0)::bigint AS n FROM versions WHERE job_id = $1`, [jobId]))!.n,
    commitRound: (jobId, next, taskIds, now) => c.atomic(async (x) => {
      // the conditional bump takes the job's row lock: another relay closing the same round waits here,
      // then finds the version moved and changes nothing
      const bumped = await x.run('UPDATE jobs SET version = $1, round_started_at = $2 WHERE job_id = $3 AND version = $4',
        [next.version, now, jobId, next.version - 1]);
      if (bumped !== 1) return false;
      if (next.staged) throw new Error('the Postgres store writes a version\'s parts itself: nothing can be staged for it');
      const { row, chunked, chunks } = splitParts({
        params: bytes(next.params), momentum: bytes(next.momentum),
        ...(next.delta ? { delta: next.delta.bytes } : {}), ...(next.residual ? { residual: bytes(next.residual) } : {}),
      }, c.shared.chunkBytes);
      await x.run(`INSERT INTO versions (job_id, version, hash, params, momentum, created_at, delta, delta_sha256, residual, external_parts)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`, [jobId, next.version, next.hash, row.params, row.momentum, now,
        row.delta ?? null, next.delta?.sha256 ?? null, row.residual ?? null, chunked]);
      await putChunks(x, jobId, next.version, chunks);
      await x.run('UPDATE updates SET applied_in = $1 WHERE task_id = ANY($2) AND job_id = $3 AND applied_in IS NULL AND discarded = 0',
        [next.version, taskIds, jobId]);
      await x.emit('round-committed', { jobId, version: next.version, hash: next.hash, taskIds, at: now });
      return true;
    }),
    async getDelta(jobId, version) {
      const r = await c.one<{ delta: Buffer | null; chunked: string | null }>('SELECT delta, external_parts AS chunked FROM versions WHERE job_id = $1 AND version = $2', [jobId, version]);
      if (!r?.delta) return undefined;
      const d = await part(jobId, version, r.chunked, 'delta', r.delta);
      return d ? new Uint8Array(d) : undefined;
    },
    listDeltas: (jobId, from, to) => c.rows<DeltaInfo>(`SELECT v.version AS version, COALESCE((v.external_parts::jsonb ->> 'delta')::bigint, octet_length(v.delta)) AS bytes,
        v.delta_sha256 AS sha256, b.hash AS "baseHash" FROM versions v JOIN versions b ON b.job_id = v.job_id AND b.version = v.version - 1
        WHERE v.job_id = $1 AND v.version > $2 AND v.version <= $3 AND v.delta IS NOT NULL ORDER BY v.version`, [jobId, from, to]),

    addVolunteer: async (id, agent, device, now) =>
      (await c.run('INSERT INTO volunteers VALUES ($1, $2, $3, $4) ON CONFLICT (volunteer_id) DO NOTHING', [id, agent, device, now])) === 1,
    hasVolunteer: async (id) => (await c.one('SELECT 1 FROM volunteers WHERE volunteer_id = $1', [id])) !== undefined,
    volunteerDevice: async (id) => (await c.one<{ device: string }>('SELECT device FROM volunteers WHERE volunteer_id = $1', [id]))?.device,
    countVolunteers: async () => (await c.one<{ n: number }>('SELECT COUNT(*) AS n FROM volunteers'))!.n,

    async insertTask(t) {
      const write = (x: Ctx) => x.run(`INSERT INTO tasks (task_id, job_id, volunteer_id, base_version, shard, seed, state, issued_at, expires_at, reissue_of)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
      [t.taskId, t.jobId, t.volunteerId, t.baseVersion, t.shard, t.seed, t.state, t.issuedAt, t.expiresAt, t.reissueOf]);
      const event = { task: { ...t } };
      if (!c.needsTransaction('task-issued')) { await write(c); return c.raised('task-issued', event); }
      await c.atomic(async (x) => { await write(x); await x.emit('task-issued', event); });
    },
    async getTask(taskId) {
      const r = await c.one<TaskDb>(`SELECT ${TASK_COLS} FROM tasks WHERE task_id = $1`, [taskId]);
      return r && taskRow(r);
    },
    countLiveTasks: async (jobId, now) => (await c.one<{ n: number }>(`SELECT COUNT(*) AS n FROM tasks
      WHERE job_id = $1 AND state = 'issued' AND expires_at > $2`, [jobId, now]))!.n,
    countLiveTasksOf: async (jobId, volunteerId, now) => (await c.one<{ n: number }>(`SELECT COUNT(*) AS n FROM tasks
      WHERE job_id = $1 AND state = 'issued' AND volunteer_id = $2 AND expires_at > $3`, [jobId, volunteerId, now]))!.n,
    countTasks: async (state, now) => (state === 'issued'
      ? await c.one<{ n: number }>('SELECT COUNT(*) AS n FROM tasks WHERE state = \'issued\' AND expires_at > $1', [now])
      : await c.one<{ n: number }>('SELECT COUNT(*) AS n FROM tasks WHERE state = $1', [state]))!.n,
    expireDueTasks: (now) => c.atomic(async (x) => {
      // SKIP LOCKED: rows another relay is expiring (or accepting) right now are its business
      const due = await x.rows<TaskDb>(`UPDATE tasks SET state = 'expired' WHERE state = 'issued' AND task_id IN (
          SELECT task_id FROM tasks WHERE state = 'issued' AND expires_at <= $1 FOR UPDATE SKIP LOCKED)
        RETURNING ${TASK_COLS}`, [now]);
      if (due.length === 0) return [];
      due.sort((a, b) => a.expires_at - b.expires_at || (a.task_id < b.task_id ? -1 : 1));
      await x.emit('tasks-ended', { tasks: ended(due), state: 'expired' });
      return due.map(taskRow);
    }),
    takeReissue: async (jobId) => {
      const r = await c.one<TaskDb>(`UPDATE tasks SET reissued = 1 WHERE task_id = (
          SELECT task_id FROM tasks WHERE job_id = $1 AND state = 'expired' AND reissued = 0 ORDER BY expires_at, task_id LIMIT 1 FOR UPDATE SKIP LOCKED)
        AND reissued = 0 RETURNING ${TASK_COLS}`, [jobId]);
      return r && taskRow(r);
    },
    rejectTask: (taskId) => c.atomic(async (x) => {
      const t = await x.one<TaskDb>(`UPDATE tasks SET state = 'rejected' WHERE task_id = $1 AND state = 'issued' RETURNING ${TASK_COLS}`, [taskId]);
      if (!t) return false;
      await x.emit('tasks-ended', { tasks: ended([t]), state: 'rejected' });
      return true;
    }),
    endLeases: (jobId, above) => c.atomic(async (x) => {
      const ts = await x.rows<TaskDb>(`UPDATE tasks SET state = 'rejected' WHERE job_id = $1 AND state = 'issued' AND ($2::int IS NULL OR base_version > $2)
        RETURNING ${TASK_COLS}`, [jobId, above ?? null]);
      if (ts.length === 0) return 0;
      await x.emit('tasks-ended', { tasks: ended(ts), state: 'rejected' });
      return ts.length;
    }),
    async nextShard(jobId, shards) {
      const r = await c.one<{ cursor: number }>('UPDATE jobs SET shard_cursor = shard_cursor + 1 WHERE job_id = $1 RETURNING shard_cursor - 1 AS cursor', [jobId]);
      if (!r) throw new NotFoundError('job', jobId);
      return r.cursor % shards;
    },

    async acceptUpdate(given, ack) {
      // payloads live in the database here: a spooled one is read in (off the loop), then stored as any other
      const u: UpdateRow = given.payload ? given as UpdateRow : { ...given, payload: new Uint8Array(await readFile(given.payloadFile.path)) };
      if (batched && !c.needsTransaction('update-accepted')) { await c.ready(); return batched.submit({ u, ack }); }
      if (!c.needsTransaction('update-accepted')) { await acceptOne(c, u, ack); return c.raised('update-accepted', acceptedEvent(u)); }
      await c.atomic(async (x) => { await acceptOne(x, u, ack); await x.emit('update-accepted', acceptedEvent(u)); });
    },
    pendingUpdates: async (jobId) => (await c.rows<UpdateDb>(`SELECT ${UPDATE_META}, payload FROM updates
      WHERE job_id = $1 AND applied_in IS NULL AND discarded = 0 ORDER BY accepted_at, task_id`, [jobId])).map(updateRow),
    pendingUpdateIds: async (jobId) => (await c.rows<{ task_id: string }>(`SELECT task_id FROM updates
      WHERE job_id = $1 AND applied_in IS NULL AND discarded = 0 ORDER BY accepted_at, task_id`, [jobId])).map((r) => r.task_id),
    // payloads live in the database here, so one is never lost: nothing to discard
    pendingUpdate: async (taskId) => {
      const r = await c.one<UpdateDb>(`SELECT ${UPDATE_META}, payload FROM updates WHERE task_id = $1 AND applied_in IS NULL AND discarded = 0`, [taskId]);
      return r && updateRow(r);
    },
    pendingNorms: async (jobId) => (await c.rows<{ norm: number }>(`SELECT norm FROM updates WHERE job_id = $1 AND applied_in IS NULL AND discarded = 0
      ORDER BY accepted_at, task_id`, [jobId])).map((r) => r.norm),
    pendingMeanSamples: async (jobId) => (await c.one<{ s: number | null }>(`SELECT SUM(weight * samples) / SUM(weight) AS s FROM updates
      WHERE job_id = $1 AND applied_in IS NULL AND discarded = 0 AND weight > 0`, [jobId]))?.s ?? undefined,
    countPendingUpdates: async (jobId) => (await c.one<{ n: number }>(`SELECT COUNT(*) AS n FROM updates
      WHERE job_id = $1 AND applied_in IS NULL AND discarded = 0`, [jobId]))!.n,
    appliedUpdates: async (jobId, version) => (await c.rows<UpdateDb>(`SELECT ${UPDATE_META}, payload FROM updates
      WHERE job_id = $1 AND applied_in = $2 AND payload_kept = 1 ORDER BY accepted_at, task_id`, [jobId, version])).map(updateRow),
    appliedAfter: async (jobId, version) => (await c.rows<{ task_id: string }>(`SELECT task_id FROM updates WHERE job_id = $1 AND applied_in > $2
      ORDER BY applied_in, accepted_at, task_id`, [jobId, version])).map((r) => r.task_id),
    listUpdates: async (jobId) => (await c.rows<UpdateDb>(`SELECT ${UPDATE_META} FROM updates WHERE job_id = $1 ORDER BY accepted_at, task_id`, [jobId])).map(updateMeta),
    recentNorms: async (jobId, limit) => (await c.rows<{ norm: number }>(`SELECT norm FROM updates
      WHERE job_id = $1 AND discarded = 0 AND norm > 0 ORDER BY accepted_at DESC, seq DESC LIMIT $2`, [jobId, limit])).map((r) => r.norm).reverse(),
    samplesApplied: async (jobId) => (await c.one<{ n: number }>(`SELECT COALESCE(SUM(samples), 0) AS n FROM updates
      WHERE job_id = $1 AND applied_in IS NOT NULL AND discarded = 0`, [jobId]))!.n,
    tasksSince: (after, limit) => c.rows<Seq<IssuedTaskEntry>>(`SELECT seq, job_id AS "jobId", volunteer_id AS "volunteerId", issued_at AS "issuedAt"
      FROM tasks WHERE seq > $1 ORDER BY seq LIMIT $2`, [after, limit]),
    updatesSince: (after, limit) => c.rows<Seq<AcceptedUpdateEntry>>(`SELECT seq, job_id AS "jobId", volunteer_id AS "volunteerId", samples,
      payload_bytes AS bytes, accepted_at AS "acceptedAt" FROM updates WHERE seq > $1 ORDER BY seq LIMIT $2`, [after, limit]),

    putEval: (jobId, e) => c.atomic(async (x) => {
      const earlier = await x.rows<Eval>('SELECT version, loss, accuracy, at FROM evals WHERE job_id = $1 ORDER BY version', [jobId]);
      await x.run(`INSERT INTO evals VALUES ($1, $2, $3, $4, $5) ON CONFLICT (job_id, version)
        DO UPDATE SET loss = excluded.loss, accuracy = excluded.accuracy, at = excluded.at`, [jobId, e.version, e.loss, e.accuracy, e.at]);
      await x.emit('eval-stored', { jobId, eval: { ...e }, earlier });
    }),
    listEvals: (jobId) => c.rows<Eval>('SELECT version, loss, accuracy, at FROM evals WHERE job_id = $1 ORDER BY version', [jobId]),
    countEvals: async (jobId) => (await c.one<{ n: number }>('SELECT COUNT(*) AS n FROM evals WHERE job_id = $1', [jobId]))!.n,
    thinnedEvals: (jobId, step) => c.rows<Eval>(`SELECT version, loss, accuracy, at FROM evals WHERE job_id = $1
      AND (version % $2 = 0 OR version = (SELECT MAX(version) FROM evals WHERE job_id = $1)
        OR version = (SELECT version FROM evals WHERE job_id = $1 ORDER BY loss, version LIMIT 1)) ORDER BY version`, [jobId, step]),

    async putFinish(jobId, f) {
      await c.run(`INSERT INTO job_finish VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (job_id) DO UPDATE SET rule = excluded.rule,
        reason = excluded.reason, released_version = excluded.released_version, released_hash = excluded.released_hash,
        loss = excluded.loss, accuracy = excluded.accuracy, at = excluded.at`,
      [jobId, f.rule, f.reason, f.releasedVersion, f.releasedHash, f.loss, f.accuracy, f.at]);
    },
    async getFinish(jobId) {
      const r = await c.one<FinishDb>('SELECT * FROM job_finish WHERE job_id = $1', [jobId]);
      return r && { rule: r.rule, reason: r.reason, releasedVersion: r.released_version, releasedHash: r.released_hash, loss: r.loss, accuracy: r.accuracy, at: r.at } satisfies Finish;
    },
    async clearFinish(jobId) {
      await c.run('DELETE FROM job_finish WHERE job_id = $1', [jobId]);
    },
  };
  return relay;
}
