// Usefulness score (Templar's "Gauntlet" idea, anchors-robustness §2.3): how much an update lowers the
// loss on the very batch its seed assigned, computed on the relay with the CPU reference. Forward passes
// only, so far cheaper than re-running the H inner steps. An optional control batch (data the volunteer
// did not train on) separates a real improvement from overfitting or a copied update.
// Per job (hyperparameters.usefulness, docs/jobs.md): off, score (stored and shown), or enforce (an update
// whose drop is below minDrop, or with relativeShare below that share of the job's recent median relative
// drop, is refused with 422 TT_ERR_NOT_USEFUL before it is stored).
import { decodeUpdate, toDense, type Update } from '../../shared/codec/index.ts';
import { taskBatchEncoded } from '../../shared/data/task-data.ts';
import { usefulnessOf } from '../../shared/jobs/spec.ts';
import type { ModelConfig } from '../../shared/models/config.ts';
import type { Augment, Usefulness as UsefulnessSetting } from '../../shared/protocol/messages.ts';
import { runtimeOf } from '../../shared/models/runtimes.ts';
import type { LabelledBatch } from '../../shared/reference/mlp.ts';
import type { Batch } from '../../shared/train/trainer.ts';
import { dataset } from '../data/datasets.ts';
import { fail } from '../errors.ts';
import type { Metrics } from '../metrics.ts';
import type { JobRow, RelayStore, TaskRow } from '../store/types.ts';
import type { DefenceStore } from '../store/defence-types.ts';

export type UsefulnessScore = {
  /** Loss on the assigned batch at θ_v and at θ_v − Δ (the update applied as the volunteer ended). */
  before: number;
  after: number;
  /** before − after: > 0 means the update helps on its own data. */
  drop: number;
  /** The same drop on a control batch, when one is given. */
  controlDrop?: number;
};

/** Mean cross-entropy of a batch (rows of an MLP, token windows of a GPT), forward only. */
export function batchLoss(config: ModelConfig, params: Float32Array, batch: Batch | LabelledBatch): number {
  return runtimeOf(config).evaluate(config, params, batch).loss;
}

export function usefulnessScore(
  config: ModelConfig, base: Float32Array, update: Update, batch: Batch | LabelledBatch, control?: Batch | LabelledBatch,
): UsefulnessScore {
  const delta = toDense(update);
  if (delta.length !== base.length) throw new Error(`update has ${delta.length} values but the model has ${base.length}`);
  const applied = new Float32Array(base.length);
  for (let i = 0; i < base.length; i++) applied[i] = base[i] - delta[i];
  const before = batchLoss(config, base, batch);
  const after = batchLoss(config, applied, batch);
  const score: UsefulnessScore = { before, after, drop: before - after };
  if (control) score.controlDrop = batchLoss(config, base, control) - batchLoss(config, applied, control);
  return score;
}

/** How many of a job's latest accepted scores the relative floor is taken from. */
export const RELATIVE_WINDOW = 64;

/** Why a job's setting refuses an update with this score, or undefined: only under enforce, for a drop
 * below minDrop (NaN, a loss that overflowed, is never enough) or, with a relativeShare, a relative drop
 * under relativeShare × the median of `recentRatios` (the job's latest accepted, see relativeFloor). The
 * attack bench (bench/attacks.ts) applies the same rule. */
export function refusal(setting: UsefulnessSetting, score: Pick<UsefulnessScore, 'drop' | 'before'>, recentRatios: readonly number[] = []): string | undefined {
  if (setting.mode !== 'enforce') return undefined;
  if (!(score.drop >= setting.minDrop)) return `a drop of ${score.drop.toFixed(4)} nats, below the job's minimum of ${setting.minDrop}`;
  const floor = setting.relativeShare ? relativeFloor(recentRatios, setting.relativeShare) : undefined;
  const ratio = score.drop / score.before;
  if (floor !== undefined && !(ratio >= floor)) {
    return `a drop of ${(100 * ratio).toFixed(1)} % of the loss, below ${setting.relativeShare} × the median of the job's last ${RELATIVE_WINDOW} accepted updates (${(100 * floor).toFixed(1)} %)`;
  }
  return undefined;
}

/** The relative floor: an update must lower its own batch's loss by at least `share` × the median
 * relative drop (drop ÷ loss before) of the job's recent accepted updates, in the same relative terms.
 * Undefined (no floor beyond minDrop) until `minCount` are known. Honest updates train on the batch they
 * are scored on and drop it by a share that is steady within a job; a poison tuned to pass minDrop 0
 * (ALIE at its optimised factor, a label flip, a backdoor) drops it by a fraction of that. */
export function relativeFloor(recentRatios: readonly number[], share: number, minCount = 8): number | undefined {
  const finite = recentRatios.filter(Number.isFinite);
  if (finite.length < minCount) return undefined;
  const s = [...finite].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return share * (s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2);
}

/** The inner step whose batch an update is scored on. Step 0, one batch: its gradient is the one the
 * volunteer took at θ_v itself (so `before` is the loss it reported first), and the H − 1 steps after it
 * train on the same distribution, so an honest Δ lowers it reliably; a sign flip or noise raises it.
 * More batches would cut the noise of one batch in proportion to their cost, which is paid on every upload
 * on the relay's event loop (two forward passes of one batch; bounded by LIMITS.usefulnessMultiplyAdds). */
export const SCORED_STEP = 0;

/** The update's own seeded batch, exactly as the volunteer's trainer drew it (shared/volunteer/loop.ts:
 * taskBatch(decodeTaskData(shard), model, seed, step, batchSize)), read from the shard still encoded. */
export function ownBatch(model: ModelConfig, shardBytes: Uint8Array, seed: number, batchSize: number, augment?: Augment): Batch {
  return taskBatchEncoded(shardBytes, model, seed, SCORED_STEP, batchSize, augment);
}

/** Most bytes of base-version params kept for scoring (all jobs together); the newest stay. */
const PARAMS_CACHE_BYTES = 256 * 1024 * 1024;

/** Scoring at intake: the base version's params are cached per (job, version), checked against the
 * version's hash so a rollback that re-made a version number is never scored on the old params; the batch
 * is read from the served shard bytes (already in memory), so an upload costs two forward passes. */
export function createUsefulness(o: { store: RelayStore; defence: DefenceStore; metrics: Metrics }) {
  const { store, defence, metrics } = o;
  const cache = new Map<string, { hash: string; params: Float32Array }>(); // insertion order = least recently used first
  let cachedBytes = 0;

  async function baseParams(jobId: string, version: number): Promise<Float32Array | undefined> {
    const hash = await store.versionHash(jobId, version);
    if (hash === undefined) return undefined;
    const key = `${jobId}\u0000${version}`;
    const hit = cache.get(key);
    if (hit) {
      cache.delete(key);
      cachedBytes -= hit.params.byteLength;
    }
    const params = hit?.hash === hash ? hit.params : (await store.getParams(jobId, version))?.params;
    if (!params) return undefined;
    cache.set(key, { hash, params });
    cachedBytes += params.byteLength;
    for (const [k, v] of cache) {
      if (cachedBytes <= PARAMS_CACHE_BYTES || k === key) break;
      cache.delete(k);
      cachedBytes -= v.params.byteLength;
    }
    return params;
  }

  /** Scores an update (its codec payload, already validated, or how to read it) and stores the score; in enforce mode refuses one
   * whose drop is below the job's minDrop (the task is rejected, 422 TT_ERR_NOT_USEFUL). Undefined when the
   * job has it off: then nothing is decoded or computed. */
  async function check(job: JobRow, task: TaskRow, volunteerId: string, payload: Uint8Array | (() => Promise<Uint8Array>), now: number): Promise<UsefulnessScore | undefined> {
    const setting = usefulnessOf(job.hyperparameters);
    if (setting.mode === 'off') return undefined;
    const stop = metrics.usefulnessSeconds.startTimer({ job: job.jobId });
    const params = await baseParams(job.jobId, task.baseVersion);
    if (!params) {
      await store.rejectTask(task.taskId);
      return fail('TT_ERR_TOO_STALE', `base version ${task.baseVersion} of job ${job.jobId} is gone (rolled back); lease a new task`);
    }
    const batch = ownBatch(job.model, dataset(job.dataset.name).shardBytes[task.shard], task.seed, job.hyperparameters.batchSize, job.hyperparameters.augment);
    // a spooled upload's payload is read from its file only here, for a job that scores (still on the loop)
    const bytes = payload instanceof Uint8Array ? payload : await payload();
    const score = usefulnessScore(job.model, params, decodeUpdate(bytes, params.length), batch);
    stop();
    const why = refusal(setting, score, setting.mode === 'enforce' && setting.relativeShare ? await defence.recentRelativeDrops(job.jobId, RELATIVE_WINDOW) : []);
    const refused = why !== undefined;
    await defence.putUsefulness({ taskId: task.taskId, jobId: job.jobId, volunteerId, baseVersion: task.baseVersion, ...score, refused, at: now });
    if (Number.isFinite(score.drop)) metrics.usefulnessDrop.observe({ job: job.jobId }, score.drop);
    if (refused) {
      // Not a reputation strike: an honest update can raise the loss on one batch (a job whose lr is too
      // high, error-feedback residual from older tasks, top-k leaving most of Δ behind), and a strike per
      // such batch would ban honest volunteers of a badly tuned job. Refusing keeps the update out of the
      // round; deliberate liars are what spot checks strike (server/defence/replication.ts).
      await store.rejectTask(task.taskId);
      fail('TT_ERR_NOT_USEFUL', `loss ${score.before.toFixed(4)} → ${score.after.toFixed(4)} on the batch of inner step ${SCORED_STEP}, ${why}; `
        + 'send Δ = θ_base − θ_end after the task\'s H steps on its seeded batches');
    }
    return score;
  }

  return { check };
}
export type Usefulness = ReturnType<typeof createUsefulness>;
