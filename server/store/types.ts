// What the scheduler needs from storage, and nothing about how it is stored: SQLite embedded today
// (sqlite.ts), a server database later, behind this same interface. All methods are synchronous
// because the embedded store is; a networked store would wrap the scheduler's calls, not change them.
import type { Dataset, Eval, Hyperparameters, JobStatus } from '../../shared/protocol/messages.ts';
import type { ModelConfig } from '../../shared/models/config.ts';

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
/** A version's published delta from the one before: its size, its SHA-256, and the hash it applies to. */
export type DeltaInfo = { version: number; bytes: number; sha256: string; baseHash: string };

export type NextVersion = {
  version: number; params: Float32Array; momentum: Float32Array; hash: string;
  /** the compressed delta from the current version, its SHA-256, and the residual after publishing it */
  delta?: { bytes: Uint8Array; sha256: string }; residual?: Float32Array;
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

export interface Store {
  /** Creates the job with its version-0 checkpoint (momentum zero). */
  createJob(jobId: string, spec: JobSpec, status: JobStatus, initial: { params: Float32Array; hash: string }, now: number): JobRow;
  getJob(jobId: string): JobRow | undefined;
  listJobs(status?: JobStatus): JobRow[];
  /** Follows the job transition table (server/scheduler/job-state.ts). */
  setJobStatus(jobId: string, status: JobStatus): JobRow;
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
  /** Atomically: stores version+1's checkpoint, advances the job, marks the given updates applied. */
  commitRound(jobId: string, next: NextVersion, taskIds: string[], now: number): void;
  /** The published delta that makes `version` from version − 1, when kept. */
  getDelta(jobId: string, version: number): Uint8Array | undefined;
  /** The kept deltas of versions in (from, to], ascending: what a volunteer at `from` can apply. */
  listDeltas(jobId: string, from: number, to: number): DeltaInfo[];

  addVolunteer(volunteerId: string, agent: string, device: string, now: number): void;
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
  rejectTask(taskId: string): void;
  /** Stores the update and marks its task accepted with the answer given, atomically. */
  acceptUpdate(update: UpdateRow, ack: string): void;
  /** Accepted updates not yet applied by a round. */
  pendingUpdates(jobId: string): UpdateRow[];
  /** The same updates, read one at a time as the caller iterates (a round folds them into bucket sums
   * without holding K payloads: shared/aggregate/streaming.ts). */
  eachPendingUpdate(jobId: string): Iterable<UpdateRow>;
  /** L2 norms of the accepted, unapplied updates: what the round's norm bound is taken from. */
  pendingNorms(jobId: string): number[];
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
