// Usefulness score (Templar's "Gauntlet" idea, anchors-robustness §2.3): how much an update lowers the
// loss on the very batch its seed assigned, computed on the relay with the CPU reference. Forward passes
// only, so far cheaper than re-running the H inner steps. An optional control batch (data the volunteer
// did not train on) separates a real improvement from overfitting or a copied update.
// Per job (hyperparameters.usefulness, docs/jobs.md): off, score (stored and shown), or enforce (an update
// whose drop is below minDrop, or with relativeShare below that share of the job's recent median relative
// drop, is refused with 422 TT_ERR_NOT_USEFUL before it is stored).
import { taskBatchEncoded } from '../../shared/data/task-data.ts';
import { usefulnessOf } from '../../shared/jobs/spec.ts';
import type { ModelConfig } from '../../shared/models/config.ts';
import type { Augment, Usefulness as UsefulnessSetting } from '../../shared/protocol/messages.ts';
import type { Batch } from '../../shared/train/trainer.ts';
import { dataset } from '../data/datasets.ts';
import { fail } from '../errors.ts';
import type { Metrics } from '../metrics.ts';
import type { JobRow, RelayStore, TaskRow } from '../store/types.ts';
import type { DefenceStore } from '../store/defence-types.ts';
import { runOnPool } from '../pool/index.ts';
import type { UsefulnessScore } from './usefulness-score.ts';

export { batchLoss, usefulnessScore, type UsefulnessScore } from './usefulness-score.ts';

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
 * (two forward passes of one batch, on the pool; bounded by LIMITS.usefulnessMultiplyAdds). */
export const SCORED_STEP = 0;

/** The update's own seeded batch, exactly as the volunteer's trainer drew it (shared/volunteer/loop.ts:
 * taskBatch(decodeTaskData(shard), model, seed, step, batchSize)), read from the shard still encoded. */
export function ownBatch(model: ModelConfig, shardBytes: Uint8Array, seed: number, batchSize: number, augment?: Augment): Batch {
  return taskBatchEncoded(shardBytes, model, seed, SCORED_STEP, batchSize, augment);
}

/** Scoring at intake, on the worker pool: the worker reads the base version's params from where the store
 * keeps them (always the version stored now, so a rollback that re-made a version number is never scored
 * on the old params) and the payload (given, or from its spooled file), and runs the two forward passes;
 * the batch is read here from the served shard bytes (already in memory, one batch). Nothing model-sized
 * crosses the event loop. */
export function createUsefulness(o: { store: RelayStore; defence: DefenceStore; metrics: Metrics }) {
  const { store, defence, metrics } = o;

  /** Scores an update (its codec payload, already validated, or the file it was spooled to) and stores the
   * score; in enforce mode refuses one whose drop is below the job's minDrop (the task is rejected, 422
   * TT_ERR_NOT_USEFUL). Undefined when the job has it off: then nothing is decoded or computed. */
  async function check(job: JobRow, task: TaskRow, volunteerId: string, payload: Uint8Array | { file: string }, now: number): Promise<UsefulnessScore | undefined> {
    const setting = usefulnessOf(job.hyperparameters);
    if (setting.mode === 'off') return undefined;
    const stop = metrics.usefulnessSeconds.startTimer({ job: job.jobId });
    const gone = async () => {
      await store.rejectTask(task.taskId);
      return fail('TT_ERR_TOO_STALE', `base version ${task.baseVersion} of job ${job.jobId} is gone (rolled back); lease a new task`);
    };
    if ((await store.versionHash(job.jobId, task.baseVersion)) === undefined) return gone();
    const batch = ownBatch(job.model, dataset(job.dataset.name).shardBytes[task.shard], task.seed, job.hyperparameters.batchSize, job.hyperparameters.augment);
    let score: UsefulnessScore;
    try {
      score = await runOnPool({ kind: 'usefulness', model: job.model, params: store.paramsSource(job.jobId, task.baseVersion), payload, batch });
    } catch (e) {
      // the version went between the check above and the worker's read (retention, a rollback)
      if ((await store.versionHash(job.jobId, task.baseVersion)) === undefined) return gone();
      throw e;
    }
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
