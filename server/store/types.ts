// The relay's storage boundary, and nothing about how it is stored. Two layers:
// - `RelayStore` (below `Store`): what every caller uses. Every method returns a Promise, so a networked
//   database (several relays on one Postgres) implements it without touching callers. Multi-row changes
//   are atomic, explicit transactions span several calls, and changes announce themselves as typed
//   events (`StoreEvents`) that the audit log, guardrail, evaluation and dashboard subscribe to.
// - `Store`: the embedded SQLite store's synchronous core (better-sqlite3 is synchronous), wrapped by
//   ./async.ts into a RelayStore. Callers still on it move to RelayStore.
// Storage throws ./errors.ts errors, never HTTP ones.
import type { Dataset, Eval, Finish, Hyperparameters, JobStatus } from '../../shared/protocol/messages.ts';
import type { ModelConfig } from '../../shared/models/config.ts';
import type { DefenceStore } from './defence-types.ts';
import type { OpsStore } from './ops-types.ts';
import type { FileParts, StagedOutput } from './checkpoint-files.ts';

export type JobSpec = {
  name: string; researcher: string; description: string;
  model: ModelConfig; hyperparameters: Hyperparameters; dataset: Dataset;
};
export type JobRow = JobSpec & {
  jobId: string; status: JobStatus; version: number;
  /** when the round building version+1 started collecting (ms since epoch), for the round timer */
  roundStartedAt: number; createdAt: number;
};

/** A checkpoint: parameters AND outer momentum of one version, so a rollback restores both, and the
 * relay's error-feedback residual of its published deltas (absent: zeros; shared/codec/version-delta.ts). */
export type VersionRow = { jobId: string; version: number; hash: string; params: Float32Array; momentum: Float32Array; residual?: Float32Array; createdAt: number };
/** A version's params for a download, not yet read: the hash, the size, and the bytes as a stream (from a
 * file or the database a piece at a time, never the momentum beside them). `stream` is called at most once. */
export type ParamsRead = { hash: string; bytes: number; stream(): import('node:stream').Readable };
/** A version's published delta from the one before: its size, its SHA-256, and the hash it applies to. */
export type DeltaInfo = { version: number; bytes: number; sha256: string; baseHash: string };

export type NextVersion = {
  version: number; params: Float32Array; momentum: Float32Array; hash: string;
  /** the compressed delta from the current version, its SHA-256, and the residual after publishing it */
  delta?: { bytes: Uint8Array; sha256: string }; residual?: Float32Array;
  /** Parts the round's worker wrote already under its attempt's staged names (RelayStore.roundOutput):
   * their sizes; the commit renames them to the version's own names if it wins. Their arrays above are
   * then empty and not read (the delta's SHA-256 still is). */
  staged?: { attempt: string; parts: FileParts };
};

export type TaskState = 'issued' | 'accepted' | 'rejected' | 'expired';
export const taskStates: Record<TaskState, string> = {
  issued: 'leased to a volunteer, waiting for its update',
  accepted: 'its update was checked and stored (final)',
  rejected: 'its update was refused (final)',
  expired: 'its lease ran out; its shard and seed go back to the re-issue queue',
};
export type TaskRow = {
  taskId: string; jobId: string; volunteerId: string; baseVersion: number; shard: number; seed: number;
  state: TaskState; issuedAt: number; expiresAt: number; reissueOf: string | null;
  /** sha-256 of the accepted upload, and the answer given, for idempotent re-sends */
  payloadHash: string | null; ack: string | null;
};

export type UpdateRow = {
  taskId: string; jobId: string; volunteerId: string; baseVersion: number; round: number; weight: number;
  /** the codec payload exactly as received (compressed) */
  payload: Uint8Array; payloadHash: string; losses: number[]; samples: number; computeMs: number; acceptedAt: number;
  /** L2 norm of the decoded update, measured at intake */
  norm: number;
};

/** An accepted update as intake hands it to the store: its payload in memory, or (a large upload) in the
 * file it was spooled to, which the store takes over by renaming it (never read back on the event loop). */
export type NewUpdate = Omit<UpdateRow, 'payload'> & (
  | { payload: Uint8Array; payloadFile?: undefined }
  | { payload?: undefined; payloadFile: { path: string; byteLength: number } });
export const newPayloadBytes = (u: NewUpdate): number => u.payload ? u.payload.byteLength : u.payloadFile.byteLength;

export interface Store {
  /** Creates the job with its version-0 checkpoint (momentum zero). */
  createJob(jobId: string, spec: JobSpec, status: JobStatus, initial: { params: Float32Array; hash: string }, now: number): JobRow;
  getJob(jobId: string): JobRow | undefined;
  listJobs(status?: JobStatus): JobRow[];
  /** Follows the job transition table (shared/protocol/job-states.ts); `now` restarts the round timer. */
  setJobStatus(jobId: string, status: JobStatus, now?: number): JobRow;
  /** Makes `version` current again: its params and momentum; later versions, evals and unapplied updates are dropped. */
  rollback(jobId: string, version: number, now: number): JobRow;

  getVersion(jobId: string, version: number): VersionRow | undefined;
  /** A version's parameters and hash only: what volunteers download (no momentum or residual read). */
  getParams(jobId: string, version: number): { hash: string; params: Float32Array } | undefined;
  versionHash(jobId: string, version: number): string | undefined;
  /** Versions that still have a checkpoint, ascending (retention drops old ones). */
  listVersions(jobId: string): number[];
  /**
   * Retention: drops the checkpoints of versions 0 < v ≤ upTo except multiples of `every` and the version
   * with the best held-out loss so far (the guardrail's rollback target), and the payloads of updates
   * applied in version upTo or earlier (nothing reads them again; their rows, hashes and norms stay).
   */
  pruneHistory(jobId: string, upTo: number, every: number): { checkpoints: number; payloads: number };
  /** Atomically, when the job is still at next.version − 1: stores its checkpoint, advances the job, marks
   * the given updates applied, and answers true; otherwise changes nothing and answers false. */
  commitRound(jobId: string, next: NextVersion, taskIds: string[], now: number): boolean;
  /** The published delta that makes `version` from version − 1, when kept. */
  getDelta(jobId: string, version: number): Uint8Array | undefined;
  /** The kept deltas of versions in (from, to], ascending: what a volunteer at `from` can apply. */
  listDeltas(jobId: string, from: number, to: number): DeltaInfo[];

  /** False (nothing changed) when the id exists. */
  addVolunteer(volunteerId: string, agent: string, device: string, now: number): boolean;
  hasVolunteer(volunteerId: string): boolean;

  insertTask(task: TaskRow): void;
  getTask(taskId: string): TaskRow | undefined;
  /** Issued tasks whose lease has not run out. */
  countLiveTasks(jobId: string, now: number): number;
  /** Issued tasks of one volunteer on the job whose lease has not run out. */
  countLiveTasksOf(jobId: string, volunteerId: string, now: number): number;
  /** Marks issued tasks with expiresAt ≤ now as expired and returns them. */
  expireDueTasks(now: number): TaskRow[];
  /** Takes one expired, not yet re-issued task of the job (its shard and seed are to be issued again). */
  takeReissue(jobId: string): TaskRow | undefined;
  /** False when the task was not issued. */
  rejectTask(taskId: string): boolean;
  /** Stores the update and marks its task accepted with the answer given, atomically. */
  acceptUpdate(update: NewUpdate, ack: string): void;
  /** Accepted updates not yet applied by a round. */
  pendingUpdates(jobId: string): UpdateRow[];
  /** The same updates, read one at a time as the caller iterates (a round folds them into bucket sums
   * without holding K payloads: shared/aggregate/streaming.ts). */
  eachPendingUpdate(jobId: string): Iterable<UpdateRow>;
  /** Task ids of the pending updates, oldest first, and one of them with its payload (undefined once
   * applied, or when its payload was lost: then it is discarded): eachPendingUpdate in two steps. */
  pendingUpdateIds(jobId: string): string[];
  pendingUpdate(taskId: string): UpdateRow | undefined;
  /** L2 norms of the accepted, unapplied updates: what the round's norm bound is taken from. */
  pendingNorms(jobId: string): number[];
  /** Samples per pending update, weighted by the updates' weights (undefined with none of weight > 0). */
  pendingMeanSamples(jobId: string): number | undefined;
  countPendingUpdates(jobId: string): number;
  /** The updates a round applied to make `version`, with their payloads (those retention still keeps): the
   * guardrail weighs each one alone when that version regressed. */
  appliedUpdates(jobId: string, version: number): UpdateRow[];
  /** Every accepted update (applied or not), without payloads: for audits and crash tests. */
  listUpdates(jobId: string): Omit<UpdateRow, 'payload'>[];
  /** Round-robin shard counter. */
  nextShard(jobId: string, shards: number): number;

  /** Samples trained by the updates applied in the job's current history (budgets, ../scheduler/stopping.ts). */
  samplesApplied(jobId: string): number;
  /** Replaces the job's hyperparameters (an operator extending a done job's budget). */
  setHyperparameters(jobId: string, h: Hyperparameters): JobRow;

  putEval(jobId: string, e: Eval): void;
  listEvals(jobId: string): Eval[];
  close(): void;
}

/** Where a pool worker reads a version's params itself (so the event loop never copies a big blob): a
 * SQLite file the worker opens read-only, or the params inline (a store the worker cannot reach). */
export type ParamsSource = Float32Array | { db: string; jobId: string; version: number };

/** A row of an append-only log (tasks issued, updates accepted) with its position: readers page by
 * `seq` (strictly increasing in insertion order) instead of re-aggregating every row. */
export type Seq<T> = T & { seq: number };
export type IssuedTaskEntry = { jobId: string; volunteerId: string; issuedAt: number };
export type AcceptedUpdateEntry = { jobId: string; volunteerId: string; samples: number; bytes: number; acceptedAt: number };
export type CheckpointInfo = { version: number; hash: string; at: number };

/** What changed, after it changed. Listeners registered with `on` run after the change committed;
 * those registered with `onCommitting` run inside its transaction, before the commit, with the
 * transaction's handle (a throw rolls the whole change back): the audit log writes its entry there. */
export type StoreEvents = {
  'job-created': { job: JobRow };
  'job-state-changed': { jobId: string; from: JobStatus; to: JobStatus; at: number };
  /** a round made `version` out of the updates of `taskIds` */
  'round-committed': { jobId: string; version: number; hash: string; taskIds: string[]; at: number };
  /** `version` is current again; later versions, their evaluations and unapplied updates were dropped */
  'rolled-back': { jobId: string; from: number; to: number; at: number };
  /** `earlier`: the job's evaluations before this one was stored (the guardrail compares against them) */
  'eval-stored': { jobId: string; eval: Eval; earlier: Eval[] };
  'task-issued': { task: TaskRow };
  'update-accepted': { jobId: string; taskId: string; volunteerId: string; samples: number; bytes: number; at: number };
  /** tasks that ended without an update: leases that ran out ('expired') or were ended ('rejected') */
  'tasks-ended': { tasks: { taskId: string; jobId: string; volunteerId: string }[]; state: 'expired' | 'rejected' };
  'hyperparameters-changed': { jobId: string; hyperparameters: Hyperparameters };
};
export type StoreEventName = keyof StoreEvents;
export type Listener<E extends StoreEventName, Tx> = (event: StoreEvents[E], tx: Tx) => void | Promise<void>;

export interface StoreEventSource<Tx> {
  /** After the change committed, in the order registered; the call that made the change resolves once
   * they have run. A listener's failure is reported by the store, never undoes the change nor fails the call. */
  on<E extends StoreEventName>(name: E, listener: (event: StoreEvents[E]) => void | Promise<void>): () => void;
  /** Inside the change's transaction, before it commits, with its handle: a throw rolls it back. */
  onCommitting<E extends StoreEventName>(name: E, listener: Listener<E, Tx>): () => void;
}

/**
 * Everything the relay stores, as one handle: its own state, the operator plugin's and the defence's,
 * which a transaction spans together. Contract (test/store/contract.ts runs it on every implementation):
 * - each method is atomic on its own; `transaction(fn)` makes several atomic together: fn gets a handle
 *   to use instead of this one (using this one inside fn is a StoreUsageError or waits for fn, never
 *   joins it); its changes commit when fn's promise resolves and roll back if it rejects;
 * - events fire once per change, after the commit (`on`), or inside it (`onCommitting`); a rolled-back
 *   change fires nothing;
 * - `commitRound` is a conditional version bump: exactly one of several concurrent closers of a round wins;
 * - `takeReissue`, `nextShard`, `expireDueTasks` and `rejectTask` are atomic claims: no two callers (on
 *   any relay) get the same row or number;
 * - missing rows are NotFoundError, refused status changes IllegalTransitionError (./errors.ts).
 */
export interface Stores extends StoreEventSource<Stores> {
  relay: RelayStore;
  ops: OpsStore;
  defence: DefenceStore;
  transaction<T>(fn: (tx: Stores) => Promise<T>): Promise<T>;
  close(): Promise<void>;
  /** Group commit of accepted updates (./group-commit.ts), where the store does it: transactions made
   * and the updates they carried, so far. */
  groupCommitStats?(): { batches: number; items: number };
}

/** The relay's own state: jobs, versions, volunteers, tasks, updates, evaluations (see Stores). */
export interface RelayStore {

  /** Creates the job with its version-0 checkpoint (momentum zero). Fires job-created. */
  createJob(jobId: string, spec: JobSpec, status: JobStatus, initial: { params: Float32Array; hash: string }, now: number): Promise<JobRow>;
  getJob(jobId: string): Promise<JobRow | undefined>;
  /** Oldest first. */
  listJobs(status?: JobStatus): Promise<JobRow[]>;
  /** Follows the transition table (shared/protocol/job-states.ts), checked against the stored status in
   * the same atomic step; restarts the round timer. Fires job-state-changed. */
  setJobStatus(jobId: string, status: JobStatus, now: number): Promise<JobRow>;
  /** Replaces the job's hyperparameters (an operator extending a done job's budget). Fires hyperparameters-changed. */
  setHyperparameters(jobId: string, h: Hyperparameters): Promise<JobRow>;
  /** Makes `version` current again: its params and momentum; later versions, evals and unapplied updates
   * are dropped. NotFoundError('version') when it has no checkpoint. Fires rolled-back. */
  rollback(jobId: string, version: number, now: number): Promise<JobRow>;

  getVersion(jobId: string, version: number): Promise<VersionRow | undefined>;
  /** A version's parameters and hash only: what volunteers download (no momentum or residual read). */
  getParams(jobId: string, version: number): Promise<{ hash: string; params: Float32Array } | undefined>;
  versionHash(jobId: string, version: number): Promise<string | undefined>;
  /** Versions that still have a checkpoint, ascending. */
  listVersions(jobId: string): Promise<number[]>;
  /** Versions that still have a checkpoint, with hash and when it was written, ascending. */
  listCheckpoints(jobId: string): Promise<CheckpointInfo[]>;
  /** Where a pool worker reads this version's params (see ParamsSource). */
  paramsSource(jobId: string, version: number): ParamsSource;
  /** Where a round's pool worker writes the new version's large parts itself (staged, see
   * NextVersion.staged), so the event loop never writes them; undefined where the commit writes them
   * (Postgres: chunk rows, async I/O in the commit's own transaction). */
  roundOutput(): Omit<StagedOutput, 'attempt'> | undefined;
  /** Removes what a round attempt staged that did not commit (it lost, failed or its worker died). */
  discardStaged(jobId: string, version: number, attempt: string): void;
  /** A version's params to stream to a download (see ParamsRead), undefined when not stored. */
  paramsRead(jobId: string, version: number): Promise<ParamsRead | undefined>;
  /** Retention: see Store.pruneHistory. */
  pruneHistory(jobId: string, upTo: number, every: number): Promise<{ checkpoints: number; payloads: number }>;
  /** Retention by bytes: while the job's kept checkpoints (params, momentum, residual, delta) hold more than
   * `budget` bytes, drops the oldest, except versions ≥ keepFrom (what the staleness bound still accepts
   * tasks of, and the current one), the best held-out loss (the rollback target) and a done job's released
   * version; it may stop above the budget when only those are left. */
  pruneBytes(jobId: string, budget: number, keepFrom: number): Promise<{ checkpoints: number; bytes: number }>;
  /** Bytes of the job's kept checkpoints. */
  checkpointBytes(jobId: string): Promise<number>;
  /**
   * The round's commit, a conditional version bump: only when the job is still at next.version − 1 it
   * stores next's checkpoint, advances the job, restarts its round timer and marks the given (pending)
   * updates applied, atomically, and fires round-committed; otherwise (another closer won, a rollback
   * happened) it changes nothing and resolves false.
   */
  commitRound(jobId: string, next: NextVersion, taskIds: string[], now: number): Promise<boolean>;
  getDelta(jobId: string, version: number): Promise<Uint8Array | undefined>;
  listDeltas(jobId: string, from: number, to: number): Promise<DeltaInfo[]>;

  /** Registers a volunteer; false (and nothing changed) when the id exists. */
  addVolunteer(volunteerId: string, agent: string, device: string, now: number): Promise<boolean>;
  hasVolunteer(volunteerId: string): Promise<boolean>;
  volunteerDevice(volunteerId: string): Promise<string | undefined>;
  countVolunteers(): Promise<number>;

  /** Fires task-issued. */
  insertTask(task: TaskRow): Promise<void>;
  getTask(taskId: string): Promise<TaskRow | undefined>;
  /** Issued tasks of the job whose lease has not run out by `now`. */
  countLiveTasks(jobId: string, now: number): Promise<number>;
  /** Issued tasks of one volunteer on the job whose lease has not run out by `now`. */
  countLiveTasksOf(jobId: string, volunteerId: string, now: number): Promise<number>;
  /** Tasks in a state, all jobs; for 'issued', only those whose lease has not run out by `now`. */
  countTasks(state: TaskState, now: number): Promise<number>;
  /** Claims the issued tasks with expiresAt ≤ now: marks them expired and returns them (each to exactly
   * one caller). Fires tasks-ended. */
  expireDueTasks(now: number): Promise<TaskRow[]>;
  /** Claims one expired, not yet re-issued task of the job, oldest first (each to exactly one caller). */
  takeReissue(jobId: string): Promise<TaskRow | undefined>;
  /** An issued task becomes rejected; false when it was not issued (nothing changes). Fires tasks-ended. */
  rejectTask(taskId: string): Promise<boolean>;
  /** Rejects the job's issued tasks (those based on a version above `baseVersionAbove` when given);
   * returns how many. Fires tasks-ended. */
  endLeases(jobId: string, baseVersionAbove?: number): Promise<number>;
  /** The round-robin shard counter's next value modulo `shards`, each value to exactly one caller. */
  nextShard(jobId: string, shards: number): Promise<number>;

  /** Stores the update and marks its task accepted with the answer given, atomically. Fires update-accepted. */
  acceptUpdate(update: NewUpdate, ack: string): Promise<void>;
  /** Accepted updates not yet applied by a round, oldest first. */
  pendingUpdates(jobId: string): Promise<UpdateRow[]>;
  /** Streaming reads of the same (a round folds them one at a time: shared/aggregate/streaming.ts): the
   * task ids oldest first, then each one with its payload (undefined once applied or its payload lost). */
  pendingUpdateIds(jobId: string): Promise<string[]>;
  pendingUpdate(taskId: string): Promise<UpdateRow | undefined>;
  pendingNorms(jobId: string): Promise<number[]>;
  /** Samples per pending update, weighted by the updates' weights (undefined with none of weight > 0). */
  pendingMeanSamples(jobId: string): Promise<number | undefined>;
  countPendingUpdates(jobId: string): Promise<number>;
  /** The updates a round applied to make `version`, with the payloads retention still keeps. */
  appliedUpdates(jobId: string, version: number): Promise<UpdateRow[]>;
  /** Task ids of the updates applied in versions above `version`, in order (what a rollback to it drops). */
  appliedAfter(jobId: string, version: number): Promise<string[]>;
  /** Every accepted update (applied or not), without payloads. */
  listUpdates(jobId: string): Promise<Omit<UpdateRow, 'payload'>[]>;
  /** The job's last `limit` accepted, not discarded, non-zero update norms, oldest first. */
  recentNorms(jobId: string, limit: number): Promise<number[]>;
  /** Samples trained by the updates applied in the job's current history. */
  samplesApplied(jobId: string): Promise<number>;
  /** Tasks issued after position `after`, in order, at most `limit` (the dashboard's running totals). */
  tasksSince(after: number, limit: number): Promise<Seq<IssuedTaskEntry>[]>;
  /** Updates accepted after position `after`, in order, at most `limit`. */
  updatesSince(after: number, limit: number): Promise<Seq<AcceptedUpdateEntry>[]>;

  /** Stores (or replaces) the version's evaluation. Fires eval-stored. */
  putEval(jobId: string, e: Eval): Promise<void>;
  /** In version order. */
  listEvals(jobId: string): Promise<Eval[]>;
  countEvals(jobId: string): Promise<number>;
  /** Every `step`-th version's evaluation, plus the latest and the lowest-loss one, in version order. */
  thinnedEvals(jobId: string, step: number): Promise<Eval[]>;

  /** Why and at what version a done job ended (stopping rules, operators). */
  putFinish(jobId: string, f: Finish): Promise<void>;
  getFinish(jobId: string): Promise<Finish | undefined>;
  clearFinish(jobId: string): Promise<void>;
}

/** Adds a listener to a per-event registry (every store keeps one for `on` and one for `onCommitting`);
 * returns what removes it again. */
export function addListener<K, L>(registry: Map<K, Set<L>>, name: K, listener: L): () => void {
  let set = registry.get(name);
  if (!set) registry.set(name, (set = new Set()));
  set.add(listener);
  return () => { set.delete(listener); };
}
