// The embedded store: better-sqlite3 in WAL mode, one file in the data directory, with large update
// payloads and large checkpoints as files beside it (./payloads.ts, ./checkpoint-files.ts) and WAL
// checkpoints on a worker (./checkpointer.ts).
// Numbered migrations run on open (PRAGMA user_version). Every multi-row change is one transaction, so a
// kill -9 leaves either the old state or the new one, never half of a round.
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import Database from 'better-sqlite3';
import type { Eval, Finish, JobStatus } from '../../shared/protocol/messages.ts';
import { canTransition } from '../../shared/protocol/job-states.ts';
import { IllegalTransitionError, NotFoundError } from './errors.ts';
import { startCheckpointer } from './checkpointer.ts';
import { openPayloadDir } from './payloads.ts';
import { jobDirName, openCheckpointDir, type CheckpointPart, type FileParts, type StagedOutput } from './checkpoint-files.ts';
import type { AcceptedUpdateEntry, CheckpointInfo, DeltaInfo, IssuedTaskEntry, JobRow, JobSpec, ParamsRead, Seq, Store, TaskRow, TaskState, UpdateRow, VersionRow } from './types.ts';
import { newPayloadBytes } from './types.ts';
import { missingVersionMessage } from './retention.ts';

const migrations: string[] = [
  `CREATE TABLE jobs (
     job_id TEXT PRIMARY KEY, spec TEXT NOT NULL,
     status TEXT NOT NULL CHECK (status IN ('pending','running','paused','done')),
     version INTEGER NOT NULL, round_started_at INTEGER NOT NULL, shard_cursor INTEGER NOT NULL DEFAULT 0,
     created_at INTEGER NOT NULL);
   CREATE TABLE versions (
     job_id TEXT NOT NULL, version INTEGER NOT NULL, hash TEXT NOT NULL,
     params BLOB NOT NULL, momentum BLOB NOT NULL, created_at INTEGER NOT NULL,
     PRIMARY KEY (job_id, version));
   CREATE TABLE volunteers (volunteer_id TEXT PRIMARY KEY, agent TEXT NOT NULL, device TEXT NOT NULL, created_at INTEGER NOT NULL);
   CREATE TABLE tasks (
     task_id TEXT PRIMARY KEY, job_id TEXT NOT NULL, volunteer_id TEXT NOT NULL, base_version INTEGER NOT NULL,
     shard INTEGER NOT NULL, seed INTEGER NOT NULL,
     state TEXT NOT NULL CHECK (state IN ('issued','accepted','rejected','expired')),
     issued_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, reissue_of TEXT, reissued INTEGER NOT NULL DEFAULT 0,
     payload_hash TEXT, ack TEXT);
   CREATE INDEX tasks_due ON tasks (state, expires_at);
   CREATE INDEX tasks_job_state ON tasks (job_id, state);
   CREATE TABLE updates (
     task_id TEXT PRIMARY KEY, job_id TEXT NOT NULL, volunteer_id TEXT NOT NULL, base_version INTEGER NOT NULL,
     round INTEGER NOT NULL, weight REAL NOT NULL, payload BLOB NOT NULL, payload_hash TEXT NOT NULL,
     losses TEXT NOT NULL, samples INTEGER NOT NULL, compute_ms REAL NOT NULL, accepted_at INTEGER NOT NULL,
     applied_in INTEGER, discarded INTEGER NOT NULL DEFAULT 0);
   CREATE INDEX updates_pending ON updates (job_id, applied_in, discarded);
   CREATE TABLE evals (job_id TEXT NOT NULL, version INTEGER NOT NULL, loss REAL NOT NULL, accuracy REAL NOT NULL,
     at INTEGER NOT NULL, PRIMARY KEY (job_id, version));`,
  // O(1) slot accounting: counting rows per request made intake quadratic in the number of updates.
  `ALTER TABLE jobs ADD COLUMN pending_updates INTEGER NOT NULL DEFAULT 0;
   ALTER TABLE jobs ADD COLUMN issued_tasks INTEGER NOT NULL DEFAULT 0;`,
  // The round's norm bound reads norms, not payloads: decoding every pending update per upload was quadratic.
  `ALTER TABLE updates ADD COLUMN norm REAL NOT NULL DEFAULT 0;`,
  // Large payloads moved to files (./payloads.ts); payload_bytes is the size wherever the bytes are.
  `ALTER TABLE updates ADD COLUMN payload_bytes INTEGER NOT NULL DEFAULT 0;
   UPDATE updates SET payload_bytes = LENGTH(payload);`,
  // Retention drops the payloads of long-applied updates; payload_kept = 0 marks a row whose bytes are gone.
  `ALTER TABLE updates ADD COLUMN payload_kept INTEGER NOT NULL DEFAULT 1;
   CREATE INDEX updates_kept ON updates (job_id, payload_kept, applied_in);`,
  // Versions are published as compressed deltas (shared/codec/version-delta.ts): the delta from the
  // version before, its SHA-256, and the relay's error-feedback residual after publishing it.
  `ALTER TABLE versions ADD COLUMN delta BLOB;
   ALTER TABLE versions ADD COLUMN delta_sha256 TEXT;
   ALTER TABLE versions ADD COLUMN residual BLOB;`,
  // Why a done job ended (server/scheduler/stopping.ts); IF NOT EXISTS: relays before this migration
  // created it on their own.
  `CREATE TABLE IF NOT EXISTS job_finish (
    job_id TEXT PRIMARY KEY, rule TEXT NOT NULL, reason TEXT NOT NULL, released_version INTEGER NOT NULL,
    released_hash TEXT NOT NULL, loss REAL, accuracy REAL, at INTEGER NOT NULL);`,
  // Swarm jobs ask, on every lease, how many live tasks one volunteer holds: without this, a scan of all
  // the job's issued tasks (10,000 at 10,000 volunteers) per request.
  `CREATE INDEX tasks_volunteer ON tasks (job_id, volunteer_id, state);`,
  // Large checkpoint parts as files (./checkpoint-files.ts): which parts of the version are stored apart
  // from its row, with their sizes, as JSON ({"params": bytes, ...}); NULL when every part is in the row.
  // (Postgres has the same column for its chunk rows.)
  `ALTER TABLE versions ADD COLUMN external_parts TEXT;`,
  // The next re-issue is the oldest expired task not yet re-issued: without this, every lease read every
  // expired task of every job through tasks_due and sorted them (3,000 at 10,000 volunteers, bench:swarm).
  `CREATE INDEX tasks_reissue ON tasks (job_id, state, reissued, expires_at);`,
];

/** A version's bytes wherever they are (row or files), in SQL: what retention by bytes adds up. */
const VERSION_BYTES = `COALESCE(json_extract(external_parts, '$.params'), LENGTH(params)) + COALESCE(json_extract(external_parts, '$.momentum'), LENGTH(momentum))
  + COALESCE(json_extract(external_parts, '$.residual'), LENGTH(residual), 0) + COALESCE(json_extract(external_parts, '$.delta'), LENGTH(delta), 0)`;

const blob = (a: Float32Array): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
/** A row's blob (a Buffer) is copied, so the Float32Array is aligned and owns its memory; a file's bytes
 * (./checkpoint-files.ts readPart) already own an ArrayBuffer and are viewed as they are. */
const floats = (b: Uint8Array): Float32Array => (b instanceof Buffer
  ? new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength))
  : new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4));

type JobDb = { job_id: string; spec: string; status: JobStatus; version: number; round_started_at: number; created_at: number };
type TaskDb = {
  task_id: string; job_id: string; volunteer_id: string; base_version: number; shard: number; seed: number; state: TaskRow['state'];
  issued_at: number; expires_at: number; reissue_of: string | null; payload_hash: string | null; ack: string | null;
};
type UpdateDb = {
  task_id: string; job_id: string; volunteer_id: string; base_version: number; round: number; weight: number; payload?: Buffer;
  payload_hash: string; losses: string; samples: number; compute_ms: number; accepted_at: number; norm: number; payload_bytes?: number;
};

const jobRow = (r: JobDb): JobRow => ({
  ...(JSON.parse(r.spec) as JobSpec), jobId: r.job_id, status: r.status, version: r.version, roundStartedAt: r.round_started_at, createdAt: r.created_at,
});
const taskRow = (r: TaskDb): TaskRow => ({
  taskId: r.task_id, jobId: r.job_id, volunteerId: r.volunteer_id, baseVersion: r.base_version, shard: r.shard, seed: r.seed,
  state: r.state, issuedAt: r.issued_at, expiresAt: r.expires_at, reissueOf: r.reissue_of, payloadHash: r.payload_hash, ack: r.ack,
});
const updateRow = (r: UpdateDb) => ({
  taskId: r.task_id, jobId: r.job_id, volunteerId: r.volunteer_id, baseVersion: r.base_version, round: r.round, weight: r.weight,
  payloadHash: r.payload_hash, losses: JSON.parse(r.losses) as number[], samples: r.samples, computeMs: r.compute_ms, acceptedAt: r.accepted_at,
  norm: r.norm,
});

/** Payloads up to this size stay in their row: creating a file costs more than writing a few pages
 * (measured: a 23 KB top-k payload 0.2 ms in SQLite, 0.5 ms as a new file in a busy directory). */
const INLINE_PAYLOAD_BYTES = 128 * 1024;
const EMPTY = Buffer.alloc(0);
/** Checkpoint parts over this size are files (./checkpoint-files.ts): beyond the WAL's double write, a
 * version's params must stream to downloads without its momentum, and above 512 MiB a row cannot hold it. */
export const CHECKPOINT_FILE_BYTES = 1 << 20;

type FinishRow = { job_id: string; rule: string; reason: string; released_version: number; released_hash: string; loss: number | null; accuracy: number | null; at: number };

/** The synchronous core's extras beyond `Store`: what ./async.ts exposes as the rest of RelayStore. */
export type SqliteStore = Store & {
  readonly db: Database.Database;
  listCheckpoints(jobId: string): CheckpointInfo[];
  volunteerDevice(volunteerId: string): string | undefined;
  countVolunteers(): number;
  countTasks(state: TaskState, now: number): number;
  endLeases(jobId: string, baseVersionAbove?: number): TaskRow[];
  appliedAfter(jobId: string, version: number): string[];
  recentNorms(jobId: string, limit: number): number[];
  tasksSince(after: number, limit: number): Seq<IssuedTaskEntry>[];
  updatesSince(after: number, limit: number): Seq<AcceptedUpdateEntry>[];
  countEvals(jobId: string): number;
  thinnedEvals(jobId: string, step: number): Eval[];
  putFinish(jobId: string, f: Finish): void;
  getFinish(jobId: string): Finish | undefined;
  clearFinish(jobId: string): void;
  /** A version's params to stream (a download): from its file, or its row's blob; never its momentum. */
  paramsRead(jobId: string, version: number): ParamsRead | undefined;
  /** Retention by bytes: see RelayStore.pruneBytes. */
  pruneBytes(jobId: string, budget: number, keepFrom: number): { checkpoints: number; bytes: number };
  /** Bytes of the job's kept checkpoints, rows and files. */
  checkpointBytes(jobId: string): number;
  /** Files whose rows went in a change made inside an outer transaction are removed once it ends: after a
   * commit (`committed`), or kept when it rolled back (./async.ts calls this). */
  settleFiles(committed: boolean, mark?: number): void;
  /** Where a savepoint starts in that list: one rolled back settles from its mark, uncommitted. */
  filesMark(): number;
  /** See RelayStore.roundOutput and discardStaged. */
  roundOutput(): Omit<StagedOutput, 'attempt'>;
  discardStaged(jobId: string, version: number, attempt: string): void;
};

export type SqliteStoreOptions = {
  /** 'full' flushes every commit (and payload file) to disk; 'normal' survives a process crash (default). */
  durability?: 'normal' | 'full';
  /** Where the store says what went wrong without failing a request: an accepted update whose payload
   * file a power loss took (it is discarded, not applied), a lost checkpoint worker. */
  warn?: (fields: Record<string, unknown>, message: string) => void;
  /** Checkpoint the WAL on a worker thread (default true; ./checkpointer.ts). */
  checkpointWorker?: boolean;
  /** Checkpoint parts (params, momentum, residual, delta) larger than this are files (default 1 MiB). */
  checkpointFileBytes?: number;
};

const unknownJob = (jobId: string): never => { throw new NotFoundError('job', jobId); };

export function openSqliteStore(file: string, o: SqliteStoreOptions = {}): SqliteStore {
  const durability = o.durability ?? 'normal';
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  // NORMAL in WAL mode: every commit survives a process crash (kill -9); a power loss may drop the last
  // few commits, which leaves an older consistent state (FULL costs an fsync per accepted update).
  db.pragma(`synchronous = ${durability === 'full' ? 'FULL' : 'NORMAL'}`);
  db.pragma('busy_timeout = 5000');
  // after a big commit (a new job's version-0 checkpoint is 4 bytes a parameter) the WAL file would keep its
  // size on disk for good; cut it back to 64 MiB whenever it is reset
  db.pragma(`journal_size_limit = ${64 * 1024 * 1024}`);
  const applied = db.pragma('user_version', { simple: true }) as number;
  for (let i = applied; i < migrations.length; i++) {
    db.transaction(() => {
      db.exec(migrations[i]);
      db.pragma(`user_version = ${i + 1}`);
    })();
  }

  const checkpointer = o.checkpointWorker === false ? undefined
    : startCheckpointer(db, file, (e) => o.warn?.({ err: e }, 'WAL checkpoint worker lost; the relay checkpoints in its own commits again'));
  const payloads = openPayloadDir(join(dirname(file), 'payloads'), durability === 'full');
  const hasUpdate = db.prepare<[string], { n: number }>('SELECT 1 AS n FROM updates WHERE task_id = ? AND payload_kept = 1');
  payloads.removeOrphans((taskId) => hasUpdate.get(taskId) !== undefined);
  const checkpoints = openCheckpointDir(join(dirname(file), 'checkpoints'), durability === 'full');
  const fileThreshold = o.checkpointFileBytes ?? CHECKPOINT_FILE_BYTES;
  {
    const named = new Set<string>();
    for (const r of db.prepare<[], { job_id: string; version: number; files: string }>('SELECT job_id, version, external_parts AS files FROM versions WHERE external_parts IS NOT NULL').all()) {
      for (const part of Object.keys(JSON.parse(r.files) as FileParts)) named.add(`${jobDirName(r.job_id)}/${r.version}/${part}`);
    }
    checkpoints.removeOrphans((dir, version, part) => named.has(`${dir}/${version}/${part}`));
  }
  const namesFiles = db.prepare<[string, number], { n: number }>('SELECT 1 AS n FROM versions WHERE job_id = ? AND version = ? AND external_parts IS NOT NULL');
  /** Files to remove once the transaction that dropped their rows commits (see settleFiles). */
  const doomed: (() => void)[] = [];
  const removeAfterCommit = (fn: () => void): void => { doomed.push(fn); };
  /** Runs a change that may drop files: they go once its commit is final, here, or at the end of the
   * outer transaction it runs in (./async.ts); a rolled-back change drops none. */
  const dropping = <T>(fn: () => T): T => {
    const mark = doomed.length;
    try {
      const r = db.transaction(fn)();
      if (!db.inTransaction) store.settleFiles(true);
      return r;
    } catch (e) {
      doomed.length = mark;
      throw e;
    }
  };
  const dropVersionFiles = (rows: { job_id: string; version: number; files: string | null }[]): void => {
    const withFiles = rows.filter((r) => r.files !== null);
    // at the end of the outer transaction, a version made again within it (a rollback, then a new round)
    // names files at the same paths: those stay
    if (withFiles.length) removeAfterCommit(() => { for (const r of withFiles) if (!namesFiles.get(r.job_id, r.version)) checkpoints.remove(r.job_id, r.version); });
  };
  /** Writes the parts over the threshold as files (before their row commits); answers the row's values. */
  const storeParts = (jobId: string, version: number, parts: Partial<Record<CheckpointPart, Uint8Array>>): { row: Partial<Record<CheckpointPart, Buffer>>; files: FileParts } => {
    const row: Partial<Record<CheckpointPart, Buffer>> = {};
    const files: FileParts = {};
    for (const [part, bytes] of Object.entries(parts) as [CheckpointPart, Uint8Array][]) {
      if (bytes.byteLength > fileThreshold) {
        checkpoints.put(jobId, version, part, bytes);
        files[part] = bytes.byteLength;
        row[part] = EMPTY;
      } else row[part] = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    }
    return { row, files };
  };
  const filesColumn = (files: FileParts): string | null => (Object.keys(files).length ? JSON.stringify(files) : null);
  const lostFile = (jobId: string, version: number, name: CheckpointPart): undefined => {
    o.warn?.({ job: jobId, version, part: name }, 'a checkpoint file is missing or truncated (a power loss?); that version reads as not stored');
    return undefined;
  };
  /** One part of a version: from its file or its row (null: no such part); undefined when its file is lost. */
  const part = (jobId: string, version: number, files: FileParts | null, name: CheckpointPart, inRow: Buffer | null): Uint8Array | null | undefined => {
    const inFile = files?.[name];
    if (inFile === undefined) return inRow;
    return checkpoints.get(jobId, version, name, inFile) ?? lostFile(jobId, version, name);
  };

  // Statements are prepared once per SQL text: preparing on every call showed up in the relay's profile.
  const prepared = new Map<string, Database.Statement>();
  const stmt = <P extends unknown[] = unknown[], R = unknown>(sql: string): Database.Statement<P, R> => {
    let st = prepared.get(sql);
    if (!st) { st = db.prepare(sql); prepared.set(sql, st); }
    return st as unknown as Database.Statement<P, R>;
  };
  const pendingIds = (jobId: string): string[] => stmt<[string], { task_id: string }>('SELECT task_id FROM updates WHERE job_id = ? AND applied_in IS NULL AND discarded = 0 ORDER BY accepted_at, task_id').all(jobId).map((r) => r.task_id);
  /** One pending update with its payload; one whose payload file is gone is discarded (undefined). */
  const pendingOne = (taskId: string): UpdateRow | undefined => {
    const r = stmt<[string], UpdateDb>('SELECT * FROM updates WHERE task_id = ? AND applied_in IS NULL AND discarded = 0').get(taskId);
    if (!r) return undefined;
    const payload = r.payload!.byteLength > 0 ? new Uint8Array(r.payload!) : payloads.get(r.task_id, r.payload_bytes!);
    if (payload) return { ...updateRow(r), payload };
    db.transaction(() => { if (q.discardLost.run(r.task_id).changes) q.pendingInc.run(-1, r.job_id); })();
    o.warn?.({ task: r.task_id, job: r.job_id }, 'accepted update lost its payload file (a power loss?); discarded, not applied');
    return undefined;
  };
  const q = {
    job: db.prepare<[string], JobDb>('SELECT * FROM jobs WHERE job_id = ?'),
    jobs: db.prepare<[], JobDb>('SELECT * FROM jobs ORDER BY created_at, job_id'),
    jobsByStatus: db.prepare<[string], JobDb>('SELECT * FROM jobs WHERE status = ? ORDER BY created_at, job_id'),
    version: db.prepare<[string, number], { job_id: string; version: number; hash: string; params: Buffer; momentum: Buffer; residual: Buffer | null; created_at: number; files: string | null }>(
      'SELECT job_id, version, hash, params, momentum, residual, created_at, external_parts AS files FROM versions WHERE job_id = ? AND version = ?'),
    versionHash: db.prepare<[string, number], { hash: string }>('SELECT hash FROM versions WHERE job_id = ? AND version = ?'),
    task: db.prepare<[string], TaskDb>('SELECT * FROM tasks WHERE task_id = ?'),
    pending: db.prepare<[string], UpdateDb>('SELECT * FROM updates WHERE job_id = ? AND applied_in IS NULL AND discarded = 0 ORDER BY accepted_at, task_id'),
    countPending: db.prepare<[string], { n: number }>('SELECT pending_updates AS n FROM jobs WHERE job_id = ?'),
    insertUpdate: db.prepare(`INSERT INTO updates (task_id, job_id, volunteer_id, base_version, round, weight, payload, payload_bytes, payload_hash, losses, samples, compute_ms, accepted_at, norm)
                               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
    updateExists: db.prepare<[string], { n: number }>('SELECT 1 AS n FROM updates WHERE task_id = ?'),
    discardLost: db.prepare<[string]>('UPDATE updates SET discarded = 1 WHERE task_id = ? AND applied_in IS NULL AND discarded = 0'),
    pendingNorms: db.prepare<[string], { norm: number }>('SELECT norm FROM updates WHERE job_id = ? AND applied_in IS NULL AND discarded = 0'),
    pendingMeanSamples: db.prepare<[string], { s: number | null }>('SELECT SUM(weight * samples) / SUM(weight) AS s FROM updates WHERE job_id = ? AND applied_in IS NULL AND discarded = 0 AND weight > 0'),
    acceptTask: db.prepare('UPDATE tasks SET state = \'accepted\', payload_hash = ?, ack = ? WHERE task_id = ?'),
    pendingInc: db.prepare<[number, string]>('UPDATE jobs SET pending_updates = pending_updates + ? WHERE job_id = ?'),
    insertTask: db.prepare(`INSERT INTO tasks (task_id, job_id, volunteer_id, base_version, shard, seed, state, issued_at, expires_at, reissue_of)
                             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
    issuedDelta: db.prepare<[number, string]>('UPDATE jobs SET issued_tasks = issued_tasks + ? WHERE job_id = ?'),
  };

  const store: SqliteStore = {
    db,
    createJob(jobId, spec, status, initial, now) {
      db.transaction(() => {
        stmt('INSERT INTO jobs (job_id, spec, status, version, round_started_at, created_at) VALUES (?, ?, ?, 0, ?, ?)')
          .run(jobId, JSON.stringify(spec), status, now, now);
        // version 0's momentum is all zeros: stored empty (read back as zeros), not as params-sized zeros on disk
        const { row, files } = storeParts(jobId, 0, { params: blob(initial.params) });
        stmt('INSERT INTO versions (job_id, version, hash, params, momentum, created_at, external_parts) VALUES (?, 0, ?, ?, ?, ?, ?)')
          .run(jobId, initial.hash, row.params, EMPTY, now, filesColumn(files));
      })();
      return store.getJob(jobId)!;
    },
    getJob: (jobId) => { const r = q.job.get(jobId); return r && jobRow(r); },
    listJobs: (status) => (status ? q.jobsByStatus.all(status) : q.jobs.all()).map(jobRow),
    setJobStatus(jobId, status, now = Date.now()) {
      return db.transaction(() => {
        const job = store.getJob(jobId) ?? unknownJob(jobId);
        if (!canTransition(job.status, status)) throw new IllegalTransitionError(jobId, job.status, status);
        stmt('UPDATE jobs SET status = ?, round_started_at = ? WHERE job_id = ?').run(status, now, jobId);
        return store.getJob(jobId)!;
      })();
    },
    rollback(jobId, version, now) {
      const job = store.getJob(jobId) ?? unknownJob(jobId);
      if (!store.versionHash(jobId, version)) {
        throw new NotFoundError('version', `${jobId}@${version}`, missingVersionMessage(jobId, version, job.version, store.listVersions(jobId)));
      }
      dropping(() => {
        dropVersionFiles(stmt<[string, number], { job_id: string; version: number; files: string | null }>('DELETE FROM versions WHERE job_id = ? AND version > ? RETURNING job_id, version, external_parts AS files').all(jobId, version));
        stmt('DELETE FROM evals WHERE job_id = ? AND version > ?').run(jobId, version);
        stmt('UPDATE updates SET discarded = 1 WHERE job_id = ? AND (applied_in IS NULL OR applied_in > ?)').run(jobId, version);
        stmt('UPDATE jobs SET version = ?, round_started_at = ?, pending_updates = 0 WHERE job_id = ?').run(version, now, jobId);
      });
      return store.getJob(jobId)!;
    },
    getVersion(jobId, version) {
      const r = q.version.get(jobId, version);
      if (!r) return undefined;
      const files = r.files === null ? null : JSON.parse(r.files) as FileParts;
      const params = part(jobId, version, files, 'params', r.params);
      const momentum = part(jobId, version, files, 'momentum', r.momentum);
      const residual = part(jobId, version, files, 'residual', r.residual);
      if (!params || !momentum || residual === undefined) return undefined;
      return {
        jobId: r.job_id, version: r.version, hash: r.hash, params: floats(params),
        momentum: momentum.byteLength === 0 ? new Float32Array(params.byteLength / 4) : floats(momentum),
        ...(residual ? { residual: floats(residual) } : {}), createdAt: r.created_at,
      };
    },
    getParams(jobId, version) {
      const r = stmt<[string, number], { hash: string; params: Buffer; files: string | null }>('SELECT hash, params, external_parts AS files FROM versions WHERE job_id = ? AND version = ?').get(jobId, version);
      const params = r && part(jobId, version, r.files === null ? null : JSON.parse(r.files) as FileParts, 'params', r.params);
      return params ? { hash: r!.hash, params: floats(params) } : undefined;
    },
    paramsRead(jobId, version) {
      // the params file's size from the row, or only the params column of the row: momentum is never read
      const r = stmt<[string, number], { hash: string; files: string | null; bytes: number }>(`SELECT hash, external_parts AS files, LENGTH(params) AS bytes FROM versions
        WHERE job_id = ? AND version = ?`).get(jobId, version);
      if (!r) return undefined;
      const inFile = r.files === null ? undefined : (JSON.parse(r.files) as FileParts).params;
      if (inFile === undefined) {
        const b = stmt<[string, number], { params: Buffer }>('SELECT params FROM versions WHERE job_id = ? AND version = ?').get(jobId, version)!.params;
        return { hash: r.hash, bytes: b.byteLength, stream: () => Readable.from([b]) };
      }
      const s = checkpoints.stream(jobId, version, 'params', inFile);
      if (!s) return lostFile(jobId, version, 'params');
      return { hash: r.hash, bytes: inFile, stream: () => s };
    },
    versionHash: (jobId, version) => q.versionHash.get(jobId, version)?.hash,
    listVersions: (jobId) => stmt<[string], { version: number }>('SELECT version FROM versions WHERE job_id = ? ORDER BY version').all(jobId).map((r) => r.version),
    pruneHistory(jobId, upTo, every) {
      if (upTo < 1) return { checkpoints: 0, payloads: 0 };
      const files: string[] = [];
      const dropped = dropping(() => {
        const gone = stmt<[string, number, number, string], { job_id: string; version: number; files: string | null }>(`DELETE FROM versions WHERE job_id = ? AND version > 0 AND version <= ? AND version % ? != 0
          AND version IS NOT (SELECT version FROM evals WHERE job_id = ? ORDER BY loss, version LIMIT 1) RETURNING job_id, version, external_parts AS files`).all(jobId, upTo, every, jobId);
        dropVersionFiles(gone);
        const checkpoints = gone.length;
        const old = stmt<[string, number], { task_id: string; inline: number }>(`SELECT task_id, LENGTH(payload) > 0 AS inline FROM updates
          WHERE job_id = ? AND payload_kept = 1 AND applied_in <= ?`).all(jobId, upTo);
        const drop = stmt('UPDATE updates SET payload = ?, payload_kept = 0 WHERE task_id = ?');
        for (const u of old) { drop.run(EMPTY, u.task_id); if (!u.inline) files.push(u.task_id); }
        // after the commit: a crash before leaves orphans, removed on open
        if (files.length) removeAfterCommit(() => { for (const f of files) payloads.remove(f); });
        return { checkpoints, payloads: old.length };
      });
      return dropped;
    },
    pruneBytes(jobId, budget, keepFrom) {
      const gone = dropping(() => {
        let total = store.checkpointBytes(jobId);
        if (total <= budget) return [];
        // oldest first; never the versions the staleness bound still accepts tasks of, the best held-out
        // loss (the guardrail's rollback target) or the version a finished job released
        const candidates = stmt<[{ job: string; keepFrom: number }], { version: number; bytes: number }>(`SELECT version, ${VERSION_BYTES} AS bytes
          FROM versions WHERE job_id = $job AND version < $keepFrom
          AND version IS NOT (SELECT version FROM evals WHERE job_id = $job ORDER BY loss, version LIMIT 1)
          AND version IS NOT (SELECT released_version FROM job_finish WHERE job_id = $job) ORDER BY version`).all({ job: jobId, keepFrom });
        const drop = stmt<[string, number], { job_id: string; version: number; files: string | null }>('DELETE FROM versions WHERE job_id = ? AND version = ? RETURNING job_id, version, external_parts AS files');
        const rows: { job_id: string; version: number; files: string | null; bytes: number }[] = [];
        for (const c of candidates) {
          if (total <= budget) break;
          rows.push({ ...drop.get(jobId, c.version)!, bytes: c.bytes });
          total -= c.bytes;
        }
        dropVersionFiles(rows);
        return rows;
      });
      return { checkpoints: gone.length, bytes: gone.reduce((a, r) => a + r.bytes, 0) };
    },
    checkpointBytes: (jobId) => (stmt<[string], { n: number }>(`SELECT COALESCE(SUM(${VERSION_BYTES}), 0) AS n FROM versions WHERE job_id = ?`).get(jobId)!).n,
    settleFiles(committed, mark = 0) {
      const fns = doomed.splice(mark);
      if (committed) for (const fn of fns) fn();
    },
    filesMark: () => doomed.length,
    commitRound(jobId, next, taskIds, now) {
      return db.transaction(() => {
        const cur = q.job.get(jobId) ?? unknownJob(jobId);
        if (cur.version + 1 !== next.version) return false; // another closer won, or a rollback moved the job
        // checked first, then the files written (or the worker's staged ones renamed), then the row: in this
        // one synchronous call nothing else can commit this version between the check and the insert, so
        // no winner's files are overwritten
        const staged = next.staged?.parts ?? {};
        const inline: Partial<Record<CheckpointPart, Uint8Array>> = {
          params: blob(next.params), momentum: blob(next.momentum),
          ...(next.delta ? { delta: next.delta.bytes } : {}), ...(next.residual ? { residual: blob(next.residual) } : {}),
        };
        for (const p of Object.keys(staged) as CheckpointPart[]) delete inline[p];
        const { row, files } = storeParts(jobId, next.version, inline);
        if (next.staged) {
          const names = Object.keys(staged) as CheckpointPart[];
          checkpoints.promote(jobId, next.version, next.staged.attempt, names);
          for (const p of names) { row[p] = EMPTY; files[p] = staged[p]; }
        }
        stmt('INSERT INTO versions (job_id, version, hash, params, momentum, created_at, delta, delta_sha256, residual, external_parts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)')
          .run(jobId, next.version, next.hash, row.params, row.momentum, now, row.delta ?? null, next.delta?.sha256 ?? null, row.residual ?? null, filesColumn(files));
        const mark = stmt('UPDATE updates SET applied_in = ? WHERE task_id = ? AND applied_in IS NULL AND discarded = 0');
        let applied = 0;
        for (const t of taskIds) applied += mark.run(next.version, t).changes;
        stmt('UPDATE jobs SET version = ?, round_started_at = ?, pending_updates = pending_updates - ? WHERE job_id = ?').run(next.version, now, applied, jobId);
        return true;
      })();
    },
    roundOutput: () => ({ dir: checkpoints.dir, sync: durability === 'full', threshold: fileThreshold }),
    discardStaged: (jobId, version, attempt) => checkpoints.discard(jobId, version, attempt),
    getDelta(jobId, version) {
      const r = stmt<[string, number], { delta: Buffer | null; files: string | null }>('SELECT delta, external_parts AS files FROM versions WHERE job_id = ? AND version = ?').get(jobId, version);
      if (!r?.delta) return undefined;
      return part(jobId, version, r.files === null ? null : JSON.parse(r.files) as FileParts, 'delta', r.delta) ?? undefined;
    },
    listDeltas: (jobId, from, to) => stmt<[string, string, number, number], DeltaInfo>(`SELECT v.version AS version, COALESCE(json_extract(v.external_parts, '$.delta'), LENGTH(v.delta)) AS bytes,
        v.delta_sha256 AS sha256, b.hash AS baseHash FROM versions v JOIN versions b ON b.job_id = ? AND b.version = v.version - 1
        WHERE v.job_id = ? AND v.version > ? AND v.version <= ? AND v.delta IS NOT NULL ORDER BY v.version`).all(jobId, jobId, from, to),
    addVolunteer(id, agent, device, now) {
      return stmt('INSERT OR IGNORE INTO volunteers VALUES (?, ?, ?, ?)').run(id, agent, device, now).changes === 1;
    },
    hasVolunteer: (id) => stmt('SELECT 1 FROM volunteers WHERE volunteer_id = ?').get(id) !== undefined,
    insertTask(t) {
      db.transaction(() => {
      q.issuedDelta.run(1, t.jobId);
      q.insertTask.run(t.taskId, t.jobId, t.volunteerId, t.baseVersion, t.shard, t.seed, t.state, t.issuedAt, t.expiresAt, t.reissueOf);
      })();
    },
    getTask: (taskId) => { const r = q.task.get(taskId); return r && taskRow(r); },
    // the job's issued-task counter, less those whose lease is due by `now` but not yet swept (few: the
    // sweep expires them every second; counted on the (state, expires_at) index)
    countLiveTasks: (jobId, now) => (stmt(`SELECT issued_tasks - (SELECT COUNT(*) FROM tasks WHERE state = 'issued' AND expires_at <= ? AND job_id = ?) AS n
      FROM jobs WHERE job_id = ?`).get(now, jobId, jobId) as { n: number } | undefined)?.n ?? 0,
    // `+expires_at`: keeps the planner on tasks_volunteer; left to itself it took tasks_due's range of every
    // live task of every job (10,000 rows a lease at 10,000 volunteers: most of bench:swarm's time there)
    countLiveTasksOf: (jobId, volunteerId, now) => (stmt(`SELECT COUNT(*) AS n FROM tasks
      WHERE job_id = ? AND state = 'issued' AND volunteer_id = ? AND +expires_at > ?`).get(jobId, volunteerId, now) as { n: number }).n,
    expireDueTasks(now) {
      return db.transaction(() => {
        const due = stmt<[number], TaskDb>('SELECT * FROM tasks WHERE state = \'issued\' AND expires_at <= ?').all(now);
        const mark = stmt('UPDATE tasks SET state = \'expired\' WHERE task_id = ?');
        for (const t of due) { mark.run(t.task_id); q.issuedDelta.run(-1, t.job_id); }
        return due.map((t) => ({ ...taskRow(t), state: 'expired' as const }));
      })();
    },
    takeReissue(jobId) {
      return db.transaction(() => {
        const r = stmt<[string], TaskDb>('SELECT * FROM tasks WHERE job_id = ? AND state = \'expired\' AND reissued = 0 ORDER BY expires_at LIMIT 1').get(jobId);
        if (!r) return undefined;
        stmt('UPDATE tasks SET reissued = 1 WHERE task_id = ?').run(r.task_id);
        return taskRow(r);
      })();
    },
    rejectTask(taskId) {
      return db.transaction(() => {
        const t = q.task.get(taskId);
        if (t?.state !== 'issued') return false;
        stmt('UPDATE tasks SET state = \'rejected\' WHERE task_id = ?').run(taskId);
        q.issuedDelta.run(-1, t.job_id);
        return true;
      })();
    },
    endLeases(jobId, above = -1) {
      return db.transaction(() => {
        const rows = stmt<[string, number], TaskDb>('SELECT * FROM tasks WHERE job_id = ? AND state = \'issued\' AND base_version > ? ORDER BY issued_at, task_id').all(jobId, above);
        const mark = stmt('UPDATE tasks SET state = \'rejected\' WHERE task_id = ?');
        for (const r of rows) mark.run(r.task_id);
        if (rows.length) q.issuedDelta.run(-rows.length, jobId);
        return rows.map((r) => ({ ...taskRow(r), state: 'rejected' as const }));
      })();
    },
    acceptUpdate(u, ack) {
      const byteLength = newPayloadBytes(u);
      const inline = byteLength <= INLINE_PAYLOAD_BYTES;
      // a small spooled payload goes into its row like any small one; a large one's file is taken over
      const payload = u.payload ?? (inline ? payloads.read(u.payloadFile.path, byteLength) : undefined);
      // never over the file of an update already stored for this task: that insert fails below anyway
      const writes = !inline && q.updateExists.get(u.taskId) === undefined;
      if (writes) { // before the row: a committed row always has its file
        if (u.payloadFile) payloads.adopt(u.taskId, u.payloadFile.path, byteLength); else payloads.put(u.taskId, u.payload);
      }
      try {
        db.transaction(() => {
          q.insertUpdate.run(u.taskId, u.jobId, u.volunteerId, u.baseVersion, u.round, u.weight,
              inline ? Buffer.from(payload!.buffer, payload!.byteOffset, payload!.byteLength) : EMPTY, byteLength,
              u.payloadHash, JSON.stringify(u.losses), u.samples, u.computeMs, u.acceptedAt, u.norm);
          const was = q.task.get(u.taskId)!.state;
          q.acceptTask.run(u.payloadHash, ack, u.taskId);
          q.pendingInc.run(1, u.jobId);
          if (was === 'issued') q.issuedDelta.run(-1, u.jobId);
        })();
      } catch (e) {
        if (writes) payloads.remove(u.taskId); // its row was not stored: no orphan left until the next open
        throw e;
      }
    },
    pendingUpdates(jobId) {
      const out: UpdateRow[] = [];
      for (const r of q.pending.all(jobId)) {
        const payload = r.payload!.byteLength > 0 ? new Uint8Array(r.payload!) : payloads.get(r.task_id, r.payload_bytes!);
        if (payload) { out.push({ ...updateRow(r), payload }); continue; }
        db.transaction(() => { if (q.discardLost.run(r.task_id).changes) q.pendingInc.run(-1, jobId); })();
        o.warn?.({ task: r.task_id, job: jobId }, 'accepted update lost its payload file (a power loss?); discarded, not applied');
      }
      return out;
    },
    pendingUpdateIds: (jobId) => pendingIds(jobId),
    pendingUpdate: (taskId) => pendingOne(taskId),
    *eachPendingUpdate(jobId) {
      // ids first, then one row (and payload) at a time: a round of any size holds one payload in memory
      for (const id of pendingIds(jobId)) {
        const u = pendingOne(id);
        if (u) yield u;
      }
    },
    appliedUpdates(jobId, version) {
      const rows = stmt<[string, number], UpdateDb>('SELECT * FROM updates WHERE job_id = ? AND applied_in = ? AND payload_kept = 1 ORDER BY accepted_at, task_id').all(jobId, version);
      return rows.flatMap((r) => {
        const payload = r.payload!.byteLength > 0 ? new Uint8Array(r.payload!) : payloads.get(r.task_id, r.payload_bytes!);
        return payload ? [{ ...updateRow(r), payload }] : [];
      });
    },
    countPendingUpdates: (jobId) => q.countPending.get(jobId)!.n,
    pendingNorms: (jobId) => q.pendingNorms.all(jobId).map((r) => r.norm),
    pendingMeanSamples: (jobId) => q.pendingMeanSamples.get(jobId)?.s ?? undefined,
    listUpdates: (jobId) =>
      stmt<[string], UpdateDb>(`SELECT task_id, job_id, volunteer_id, base_version, round, weight, payload_hash, losses, samples, compute_ms, accepted_at, norm
                                      FROM updates WHERE job_id = ? ORDER BY accepted_at, task_id`).all(jobId).map(updateRow),
    nextShard(jobId, shards) {
      return db.transaction(() => {
        const { shard_cursor } = stmt('SELECT shard_cursor FROM jobs WHERE job_id = ?').get(jobId) as { shard_cursor: number };
        stmt('UPDATE jobs SET shard_cursor = ? WHERE job_id = ?').run(shard_cursor + 1, jobId);
        return shard_cursor % shards;
      })();
    },
    samplesApplied: (jobId) => (stmt('SELECT COALESCE(SUM(samples), 0) AS n FROM updates WHERE job_id = ? AND applied_in IS NOT NULL AND discarded = 0')
      .get(jobId) as { n: number }).n,
    setHyperparameters(jobId, h) {
      const job = store.getJob(jobId) ?? unknownJob(jobId);
      const spec: JobSpec = { name: job.name, researcher: job.researcher, description: job.description, model: job.model, hyperparameters: h, dataset: job.dataset };
      stmt('UPDATE jobs SET spec = ? WHERE job_id = ?').run(JSON.stringify(spec), jobId);
      return store.getJob(jobId)!;
    },
    putEval(jobId, e) {
      stmt('INSERT OR REPLACE INTO evals VALUES (?, ?, ?, ?, ?)').run(jobId, e.version, e.loss, e.accuracy, e.at);
    },
    listEvals: (jobId) => stmt<[string], Eval>('SELECT version, loss, accuracy, at FROM evals WHERE job_id = ? ORDER BY version').all(jobId),
    listCheckpoints: (jobId) => stmt<[string], CheckpointInfo>('SELECT version, hash, created_at AS at FROM versions WHERE job_id = ? ORDER BY version').all(jobId),
    volunteerDevice: (id) => stmt<[string], { device: string }>('SELECT device FROM volunteers WHERE volunteer_id = ?').get(id)?.device,
    countVolunteers: () => (stmt('SELECT COUNT(*) AS n FROM volunteers').get() as { n: number }).n,
    countTasks: (state, now) => ((state === 'issued'
      ? stmt('SELECT COUNT(*) AS n FROM tasks WHERE state = \'issued\' AND expires_at > ?').get(now)
      : stmt('SELECT COUNT(*) AS n FROM tasks WHERE state = ?').get(state)) as { n: number }).n,
    appliedAfter: (jobId, version) => stmt<[string, number], { t: string }>('SELECT task_id AS t FROM updates WHERE job_id = ? AND applied_in > ? ORDER BY applied_in, accepted_at')
      .all(jobId, version).map((r) => r.t),
    recentNorms: (jobId, limit) => stmt<[string, number], { norm: number }>(`SELECT norm FROM updates
        WHERE job_id = ? AND discarded = 0 AND norm > 0 ORDER BY accepted_at DESC, rowid DESC LIMIT ?`).all(jobId, limit).map((r) => r.norm).reverse(),
    // rowid is SQLite's insertion order for these append-only tables: the position readers page by
    tasksSince: (after, limit) => stmt<[number, number], Seq<IssuedTaskEntry>>(`SELECT rowid AS seq, job_id AS jobId, volunteer_id AS volunteerId, issued_at AS issuedAt
        FROM tasks WHERE rowid > ? ORDER BY rowid LIMIT ?`).all(after, limit),
    updatesSince: (after, limit) => stmt<[number, number], Seq<AcceptedUpdateEntry>>(`SELECT rowid AS seq, job_id AS jobId, volunteer_id AS volunteerId, samples,
        payload_bytes AS bytes, accepted_at AS acceptedAt FROM updates WHERE rowid > ? ORDER BY rowid LIMIT ?`).all(after, limit),
    countEvals: (jobId) => (stmt('SELECT COUNT(*) AS n FROM evals WHERE job_id = ?').get(jobId) as { n: number }).n,
    thinnedEvals: (jobId, step) => stmt<[{ job: string; step: number }], Eval>(`SELECT version, loss, accuracy, at FROM evals WHERE job_id = $job
        AND (version % $step = 0 OR version = (SELECT MAX(version) FROM evals WHERE job_id = $job)
          OR version = (SELECT version FROM evals WHERE job_id = $job ORDER BY loss, version LIMIT 1)) ORDER BY version`).all({ job: jobId, step }),
    putFinish(jobId, f) {
      stmt('INSERT OR REPLACE INTO job_finish VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
        .run(jobId, f.rule, f.reason, f.releasedVersion, f.releasedHash, f.loss, f.accuracy, f.at);
    },
    getFinish(jobId) {
      const r = stmt<[string], FinishRow>('SELECT * FROM job_finish WHERE job_id = ?').get(jobId);
      return r && { rule: r.rule, reason: r.reason, releasedVersion: r.released_version, releasedHash: r.released_hash, loss: r.loss, accuracy: r.accuracy, at: r.at };
    },
    clearFinish(jobId) { stmt('DELETE FROM job_finish WHERE job_id = ?').run(jobId); },
    close: () => { checkpointer?.close(); db.close(); },
  };
  return store;
}
