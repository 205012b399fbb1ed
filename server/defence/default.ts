// The defence a submitted job gets when its spec leaves it out: the combination that did best in the worst
// case over the attack table, IID and non-IID (docs/defence.md, `npm run bench:attacks`, which reads its
// "default defence" column from here). The usefulness check is the part that depends on the model, because
// the relay pays for it on its own CPU at every upload: `enforce` (minDrop 0, and the relative floor at DEFAULT_RELATIVE_SHARE
// of the job's recent median) for an MLP whose scoring fits LIMITS.usefulnessMultiplyAdds, `off` otherwise
// (every GPT job: see gptUsefulnessDefault). Behind the check the rule is the mean (CHECKED_AGGREGATOR);
// without it, the job default of shared/jobs/spec.ts (Multi-Krum).
import { LIMITS, resolveHyperparameters, usefulnessMultiplyAdds, type JobSubmission } from '../../shared/jobs/spec.ts';
import type { ModelConfig } from '../../shared/models/config.ts';
import type { AggregatorName } from '../../shared/aggregate/index.ts';
import type { Hyperparameters, Usefulness } from '../../shared/protocol/messages.ts';

/** GPT jobs are not scored by default even when a small one would be affordable: the CPU reference's
 * forward pass of a token batch is the only thing that could score it, its cost grows with batch × context
 * × parameters (GPT-2 small: 2 × 124 M × 32 × 1,024 ≈ 8 T multiply-adds per update, 10⁵ × the limit), and
 * the attack bench that justifies `enforce` measured MLP jobs only. A researcher can still ask for it. */
export const gptUsefulnessDefault: Usefulness['mode'] = 'off';

/** The default relative floor (server/defence/usefulness.ts relativeFloor): an update must drop its own
 * batch's loss by at least a quarter of what the job's recent accepted updates do, relatively. In the attack
 * bench (docs/defence.md) honest updates' relative drops had their 1 % quantile at a third to a half of their
 * median, so a quarter refuses almost none of them; the optimised ALIE's median sat at an eighth (IID) and a
 * sixteenth (non-IID) of it. */
export const DEFAULT_RELATIVE_SHARE = 0.25;

/** The rule behind the check when the check is on by default and the spec names no rule and no
 * pre-aggregator: the plain mean. With every update scored on its own batch, what reaches aggregation is
 * what lowered that batch's loss by a share near the job's norm; a robust rule then only drops honest
 * minority updates (under non-IID data at 30 rounds Multi-Krum cost 5.8 points of clean accuracy; behind the
 * check the mean lost 1.7 points to its worst attack, centered clipping 3.3, Multi-Krum 6.1). Without the check (GPT
 * jobs, larger MLPs) the default rule stays shared/jobs/spec.ts's Multi-Krum, the best rule alone. */
export const CHECKED_AGGREGATOR: AggregatorName = 'mean';

/** The usefulness mode a job gets when its spec names none. */
export function defaultUsefulnessMode(model: ModelConfig, batchSize: number): Usefulness['mode'] {
  if (model.kind === 'gpt') return gptUsefulnessDefault;
  return usefulnessMultiplyAdds(model, batchSize) <= LIMITS.usefulnessMultiplyAdds ? 'enforce' : 'off';
}

/** A submission's hyperparameters with every default filled in, the defence included: what the relay
 * stores for a new job once its data has decided the model's full shape. A mode the spec names is kept
 * as it is, with only the fields it names (checkUsefulness then refuses one the relay cannot afford). */
export function resolveJobHyperparameters(model: ModelConfig, job: Pick<JobSubmission, 'hyperparameters'>): Hyperparameters {
  const h = resolveHyperparameters(job);
  if (job.hyperparameters?.usefulness?.mode !== undefined) return h;
  const mode = defaultUsefulnessMode(model, h.batchSize);
  if (mode !== 'enforce') return { ...h, usefulness: { ...h.usefulness!, mode } };
  const named = job.hyperparameters?.aggregator !== undefined || job.hyperparameters?.preAggregators !== undefined;
  return { ...h, ...(named ? {} : { aggregator: CHECKED_AGGREGATOR }), usefulness: { relativeShare: DEFAULT_RELATIVE_SHARE, ...h.usefulness!, mode } };
}
