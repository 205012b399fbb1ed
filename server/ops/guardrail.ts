// The loss-regression guardrail: after an outer step, if held-out loss rose more than the job's threshold
// above the best version so far, the relay rolls the job back to that best version (and quarantines the
// updates that made the bad one), and keeps training. It pauses only when rolling back keeps failing.
//
// Why roll back rather than pause: pausing is what an attacker wants. Two Sybil identities on a K = 2 job
// were enough to make one bad version and stop the job for everyone until a human came; a rollback undoes
// the damage at once, costs honest volunteers one round, and puts a strike on every identity whose update
// alone would have tripped the guardrail (./guardrail-act.ts), so each attempt spends identities (and with
// the norm bound, no single update can move the model further than an honest task could). A job is paused
// for review only after MAX_GUARDRAIL_ROLLBACKS rollbacks to the same best version with nothing better in
// between: a job that cannot make progress (overfitting, a learning rate too high, a sustained attack that
// keeps paying for fresh identities) needs a human, and by then the attack was not cheap.
import type { Eval } from '../../shared/protocol/messages.ts';

export type Regression = { version: number; loss: number; bestVersion: number; bestLoss: number; rise: number; maxLossRise: number };

/** Rollbacks to one best version, with nothing better since, before the guardrail pauses instead. */
export const MAX_GUARDRAIL_ROLLBACKS = 3;

/** The threshold of jobs without a submission of their own (the relay's default job, jobs made in code):
 * looser than a submitted job's default (0.5) because the default MNIST job's early rounds, with 4
 * volunteers and outer Nesterov momentum, can swing by a few tenths of a nat; any poisoning worth doing
 * moves it by far more (four Sybils took it from 2.4 to 412). */
export const UNSUBMITTED_JOB_GUARDRAIL = { maxLossRise: 1.0 };

/** The regression `latest` shows against earlier evals, or null when within the threshold. */
export function lossRegression(earlier: Eval[], latest: Eval, maxLossRise: number): Regression | null {
  let best: Eval | undefined;
  for (const e of earlier) if (e.version < latest.version && Number.isFinite(e.loss) && (!best || e.loss < best.loss)) best = e;
  if (!best) return null;
  const rise = Number.isFinite(latest.loss) ? latest.loss - best.loss : Infinity;
  if (rise <= maxLossRise) return null;
  return { version: latest.version, loss: latest.loss, bestVersion: best.version, bestLoss: best.loss, rise, maxLossRise };
}

export type GuardrailDecision =
  | { action: 'rollback'; to: number; regression: Regression }
  | { action: 'pause'; regression: Regression; rollbacks: number };

/**
 * What the guardrail does about `latest`: nothing (within the threshold), roll back to the best version,
 * or pause when `rollbacksToBest` earlier guardrail rollbacks already went to that same version (or it has
 * no checkpoint to roll back to: `canRollBack` false).
 */
export function guardrailDecision(earlier: Eval[], latest: Eval, maxLossRise: number, rollbacksToBest: number, canRollBack = true): GuardrailDecision | null {
  const regression = lossRegression(earlier, latest, maxLossRise);
  if (!regression) return null;
  if (!canRollBack || rollbacksToBest >= MAX_GUARDRAIL_ROLLBACKS) return { action: 'pause', regression, rollbacks: rollbacksToBest };
  return { action: 'rollback', to: regression.bestVersion, regression };
}

/** An update of the regressed round, weighed alone: the held-out loss of its round's base version after an
 * outer step with this update as the whole round. */
export type Weighed = { taskId: string; volunteerId: string; loss: number };

/** The updates that alone would have tripped the guardrail (a rise above the threshold, or a non-finite
 * loss): the ones struck. An honest update in a poisoned round moves its base far less, so it is spared. */
export function culprits(baseLoss: number, weighed: Weighed[], maxLossRise: number): Weighed[] {
  return weighed.filter((w) => !(w.loss - baseLoss <= maxLossRise));
}
