// The relay's HTTP contract (docs/protocol.md), written once as TypeBox schemas: the relay validates
// requests with them, clients check answers with them, and both sides take their types from them.
// Names say direction: VolunteerSends… is a request body, RelaySends… a response body.
import { Type, type Static } from '@sinclair/typebox';
import { aggregatorNames, preAggregatorNames } from '../aggregate/registry.ts';
import { CompressionSchema } from '../codec/registry.ts';
import { ModelSchema } from '../models/registry.ts';

const Id = Type.String({ minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9_.:-]+$' });

export const AdamWSchema = Type.Object({
  lr: Type.Number({ exclusiveMinimum: 0, maximum: 1 }),
  beta1: Type.Number({ minimum: 0, exclusiveMaximum: 1 }),
  beta2: Type.Number({ minimum: 0, exclusiveMaximum: 1 }),
  eps: Type.Number({ exclusiveMinimum: 0 }),
  weightDecay: Type.Number({ minimum: 0 }),
});

/** The settings of shared/codec/registry.ts's codecs, so a new codec needs no edit here. */
export { CompressionSchema };

/** The configs of shared/models/registry.ts's kinds, so a new kind needs no edit here. */
export { ModelSchema };

/** The names of shared/aggregate/registry.ts, so a new rule needs no edit here. */
export const AggregatorSchema = Type.Union(aggregatorNames.map((n) => Type.Literal(n)));
export const PreAggregatorSchema = Type.Union(preAggregatorNames.map((n) => Type.Literal(n)));

/** Usefulness score (server/defence/usefulness.ts): the loss drop an update gives on its own seeded batch,
 * computed on the relay with the CPU reference. Absent means off (jobs made before the field existed). */
export const UsefulnessSchema = Type.Object({
  mode: Type.Union([Type.Literal('off'), Type.Literal('score'), Type.Literal('enforce')], {
    description: 'off: not computed; score: computed, stored and shown; enforce: also refuses an update whose drop is below minDrop',
  }),
  minDrop: Type.Number({ minimum: -100, maximum: 100, description: 'enforce: the smallest loss drop (nats) accepted; negative tolerates a small rise' }),
  relativeShare: Type.Optional(Type.Number({ minimum: 0, maximum: 1, description: 'enforce: also refuse a drop (as a share of the loss before) under this share of the median of the job\'s last 64 accepted updates; 0 or absent: no such floor' })),
}, { additionalProperties: false });

/** When a job is finished (server/scheduler/stopping.ts): the first rule that holds moves it to done, and
 * its released version is the one with the best held-out loss. Absent: it runs until an operator ends it. */
export const UntilSchema = Type.Object({
  samples: Type.Optional(Type.Integer({ minimum: 1, description: 'budget: stop once the applied updates have trained on this many samples' })),
  versions: Type.Optional(Type.Integer({ minimum: 1, description: 'budget: stop at this version' })),
  targetLoss: Type.Optional(Type.Number({ exclusiveMinimum: 0, description: 'stop once held-out loss is at or below this' })),
  targetAccuracy: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 1, description: 'stop once held-out accuracy is at or above this' })),
  plateau: Type.Optional(Type.Object({
    evals: Type.Integer({ minimum: 1, maximum: 10_000, description: 'N: evaluations in a row without improvement' }),
    tolerance: Type.Number({ minimum: 0, description: 'an improvement is a held-out loss below the best so far by more than this (nats)' }),
  }, { additionalProperties: false })),
}, { additionalProperties: false });

/** Seeded data augmentation of labelled image rows (shared/data/augment.ts): each row of a batch is shifted
 * by up to `shift` pixels in x and y, drawn from the task's seed, so two devices with one task agree. */
export const AugmentSchema = Type.Object({
  shift: Type.Integer({ minimum: 0, maximum: 8, description: 'largest shift in pixels, each axis' }),
  width: Type.Optional(Type.Integer({ minimum: 1, maximum: 4096, description: 'image width in pixels (default: the square root of the row length)' })),
}, { additionalProperties: false });

/** Asynchronous swarm scheduling (server/scheduler/swarm.ts): every volunteer that asks gets work, each
 * task sized to its device, rounds sized to the live tasks (server/scheduler/round-size.ts). Absent or
 * false: the round scheduler (at most K + 1 tasks out, fixed H and lease). */
export const SwarmSchema = Type.Object({
  targetTaskMs: Type.Optional(Type.Integer({ minimum: 1_000, maximum: 3_600_000, description: 'wall time a task should take on its volunteer\'s device (default 60000)' })),
  targetRoundMs: Type.Optional(Type.Integer({ minimum: 100, maximum: 3_600_000, description: 'a round closes about this often (default 2 × targetTaskMs / stalenessBound)' })),
  maxConcurrentTasks: Type.Optional(Type.Integer({ minimum: 1, description: 'most tasks leased at once (default: no limit)' })),
  minSteps: Type.Optional(Type.Integer({ minimum: 1, maximum: 100_000, description: 'fewest inner steps of a task (default 1)' })),
  maxSteps: Type.Optional(Type.Integer({ minimum: 1, maximum: 100_000, description: 'most inner steps of a task (default steps: a fast device runs more tasks, not longer ones)' })),
  maxOuterGain: Type.Optional(Type.Number({ minimum: 1, maximum: 1_000, description: 'most a round bigger than updatesPerRound may multiply its outer step by, from the spread of its updates (1: never)' })),
}, { additionalProperties: false });

/** A job's training hyperparameters (inner and outer loop, rounds, staleness, compression). */
export const HyperparametersSchema = Type.Object({
  steps: Type.Integer({ minimum: 1, maximum: 100_000, description: 'H: inner steps per task' }),
  batchSize: Type.Integer({ minimum: 1, maximum: 65_536 }),
  adamw: AdamWSchema,
  clipNorm: Type.Number({ minimum: 0, description: '0 disables gradient clipping' }),
  outerLr: Type.Number({ exclusiveMinimum: 0 }),
  outerMomentum: Type.Number({ minimum: 0, exclusiveMaximum: 1 }),
  updatesPerRound: Type.Integer({ minimum: 1, description: 'K: updates that close a round' }),
  quorum: Type.Integer({ minimum: 1, description: 'fewest updates the round timer may close a round with' }),
  roundTimeoutMs: Type.Integer({ minimum: 1 }),
  stalenessBound: Type.Integer({ minimum: 0, description: 'oldest base version accepted, as versions behind' }),
  leaseMs: Type.Integer({ minimum: 1 }),
  compression: CompressionSchema,
  versionCompression: Type.Optional(Type.Union(CompressionSchema.anyOf, { description: 'how each new version is published as a delta from the one before (shared/codec/version-delta.ts); default int8 blocks (fp32 for fp32 jobs)' })),
  aggregator: AggregatorSchema,
  preAggregators: Type.Optional(Type.Array(PreAggregatorSchema, { maxItems: 4, description: 'applied in order before the aggregator, e.g. ["nnm"]' })),
  maxUpdateNorm: Type.Number({ exclusiveMinimum: 0, description: 'updates with a larger L2 norm are refused' }),
  usefulness: Type.Optional(UsefulnessSchema),
  until: Type.Optional(UntilSchema),
  augment: Type.Optional(AugmentSchema),
  swarm: Type.Optional(Type.Union([SwarmSchema, Type.Literal(false)], { description: 'the swarm scheduler\'s settings ({} for its defaults); absent or false: the round scheduler (K + 1 leases)' })),
});

export const JobStatusSchema = Type.Union([
  Type.Literal('pending'), Type.Literal('running'), Type.Literal('paused'), Type.Literal('done'),
]);

export const DatasetSchema = Type.Object({ name: Type.String(), shards: Type.Integer({ minimum: 1 }), heldOut: Type.Integer({ minimum: 0 }) });

export const JobSummarySchema = Type.Object({ jobId: Id, name: Type.String(), status: JobStatusSchema, version: Type.Integer({ minimum: 0 }) });

/** Why and where a done job stopped (server/scheduler/stopping.ts). */
export const FinishSchema = Type.Object({
  rule: Type.String({ description: 'samples, versions, targetLoss, targetAccuracy, plateau or operator' }),
  reason: Type.String(), releasedVersion: Type.Integer({ minimum: 0 }), releasedHash: Type.String(),
  loss: Type.Union([Type.Number(), Type.Null()]), accuracy: Type.Union([Type.Number(), Type.Null()]), at: Type.Integer(),
});

export const JobInfoSchema = Type.Object({
  jobId: Id, name: Type.String(), researcher: Type.String(), description: Type.String(),
  dataset: DatasetSchema, model: ModelSchema, hyperparameters: HyperparametersSchema,
  version: Type.Integer({ minimum: 0 }), status: JobStatusSchema, paramCount: Type.Integer({ minimum: 1 }),
  finish: Type.Optional(FinishSchema),
});

export const VolunteerSendsRegistration = Type.Object({
  agent: Type.Optional(Type.String({ maxLength: 256 })),
  device: Type.Optional(Type.String({ maxLength: 256 })),
  /** ECDSA P-256 public key, base64url of the 65-byte uncompressed point (shared/security/identity.ts) */
  publicKey: Type.Optional(Type.String({ maxLength: 128 })),
  /** a challenge from GET /api/volunteers/challenge and the nonce that solves it (shared/security/pow.ts) */
  challenge: Type.Optional(Type.String({ maxLength: 1024 })),
  nonce: Type.Optional(Type.String({ maxLength: 64 })),
}, { additionalProperties: false });
export const RelaySendsPowChallenge = Type.Object({ challenge: Type.String(), difficulty: Type.Integer({ minimum: 0, maximum: 64 }) });
export const RelaySendsVolunteer = Type.Object({ volunteerId: Id });

/** A volunteer's adapter (shared/engine/memory-plan.ts AdapterLimits): the relay leases only tasks whose
 * memory plan fits it, and says why not otherwise. Absent (CPU volunteers, older clients): not checked. */
export const AdapterLimitsSchema = Type.Object({
  maxBufferSize: Type.Integer({ minimum: 0 }),
  maxStorageBufferBindingSize: Type.Integer({ minimum: 0 }),
  memoryBytes: Type.Optional(Type.Integer({ minimum: 0, description: 'GPU memory the volunteer offers in all (WebGPU does not report it)' })),
}, { additionalProperties: false });

/** Most shards a task request may list as held (a longer list is refused, not cut). */
export const MAX_HELD_SHARDS = 4096;

export const VolunteerSendsTaskRequest = Type.Object({
  volunteerId: Id, adapter: Type.Optional(AdapterLimitsSchema),
  /** shards of this job the volunteer keeps: the relay prefers a task on one of them (server/scheduler/shard-choice.ts);
   * indices the job does not have are ignored */
  shards: Type.Optional(Type.Array(Type.Integer({ minimum: 0, maximum: 2 ** 31 - 1 }), { maxItems: MAX_HELD_SHARDS })),
}, { additionalProperties: false });

export const RelaySendsTask = Type.Object({
  taskId: Id, jobId: Id, baseVersion: Type.Integer({ minimum: 0 }), versionHash: Type.String(),
  shard: Type.Integer({ minimum: 0 }), seed: Type.Integer({ minimum: 0 }), steps: Type.Integer({ minimum: 1 }),
  batchSize: Type.Integer({ minimum: 1 }), adamw: AdamWSchema, clipNorm: Type.Number({ minimum: 0 }),
  compression: CompressionSchema, lease: Type.String(), deadline: Type.Integer({ description: 'lease expiry, ms since epoch' }),
  model: ModelSchema, paramCount: Type.Integer({ minimum: 1 }),
  /** a spot-checked task (another volunteer gets the same base version, shard and seed): send its Δ
   * without error feedback (no residual in, none kept), so the two copies can be compared */
  replica: Type.Optional(Type.Boolean()),
  /** the job's seeded augmentation: batches are drawn with it (shared/data/task-data.ts) */
  augment: Type.Optional(AugmentSchema),
  /** an error-feedback residual left by a task based more than this many versions before this task's
   * base is dropped, not sent (a returning volunteer's; shared/volunteer/residual-age.ts) */
  residualMaxAge: Type.Optional(Type.Integer({ minimum: 0 })),
});

/** JSON header inside an update frame (shared/protocol/frame.ts). */
export const VolunteerSendsUpdateHeader = Type.Object({
  lease: Type.String({ minLength: 1, maxLength: 4096 }),
  volunteerId: Id,
  losses: Type.Array(Type.Number(), { maxItems: 100_000 }),
  samples: Type.Integer({ minimum: 0 }),
  computeMs: Type.Number({ minimum: 0 }),
});

export const RelaySendsUpdateAck = Type.Object({
  accepted: Type.Boolean(), duplicate: Type.Boolean(),
  round: Type.Integer({ minimum: 0, description: 'the round (= version being built) the update counts toward' }),
  weight: Type.Number({ description: 'staleness down-weighting applied to this update' }),
});

export const EvalSchema = Type.Object({ version: Type.Integer(), loss: Type.Number(), accuracy: Type.Number(), at: Type.Integer() });
export const RelaySendsEvals = Type.Object({ evals: Type.Array(EvalSchema) });
export const RelaySendsJobs = Type.Object({ jobs: Type.Array(JobSummarySchema) });
export const RelaySendsError = Type.Object({ error: Type.Object({ code: Type.String(), message: Type.String() }) });

export type AdamW = Static<typeof AdamWSchema>;
export type Hyperparameters = Static<typeof HyperparametersSchema>;
export type Usefulness = Static<typeof UsefulnessSchema>;
export type Until = Static<typeof UntilSchema>;
export type Augment = Static<typeof AugmentSchema>;
export type Swarm = Static<typeof SwarmSchema>;
export type Finish = Static<typeof FinishSchema>;
export type JobStatus = Static<typeof JobStatusSchema>;
export type JobSummary = Static<typeof JobSummarySchema>;
export type JobInfo = Static<typeof JobInfoSchema>;
export type Dataset = Static<typeof DatasetSchema>;
export type Task = Static<typeof RelaySendsTask>;
export type UpdateHeader = Static<typeof VolunteerSendsUpdateHeader>;
export type UpdateAck = Static<typeof RelaySendsUpdateAck>;
export type Eval = Static<typeof EvalSchema>;
export type ErrorBody = Static<typeof RelaySendsError>;

/** How a version can be fetched: whole (params), or as the chain of published deltas from a version the
 * volunteer holds (shared/codec/version-delta.ts). Each delta is content-addressed by its SHA-256. */
export const DeltaInfoSchema = Type.Object({
  version: Type.Integer({ minimum: 1, description: 'the version this delta makes from version − 1' }),
  bytes: Type.Integer({ minimum: 0 }),
  sha256: Type.String(),
  baseHash: Type.String({ description: 'hash of version − 1, which the delta applies to' }),
});
export const RelaySendsManifest = Type.Object({
  jobId: Type.String(), version: Type.Integer({ minimum: 0 }), hash: Type.String(),
  paramCount: Type.Integer({ minimum: 0 }), paramsBytes: Type.Integer({ minimum: 0 }),
  deltas: Type.Array(DeltaInfoSchema, { description: 'kept deltas of the versions before this one, ascending, ending at this version' }),
});
export type Manifest = Static<typeof RelaySendsManifest>;
