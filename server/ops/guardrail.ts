// The loss-regression guardrail: after an outer step, if held-out loss rose more than the job's
// threshold above the best version so far, the job is paused for a human to look (and maybe roll back).
import type { Eval } from '../../shared/protocol/messages.ts';

export type Regression = { version: number; loss: number; bestVersion: number; bestLoss: number; rise: number; maxLossRise: number };

/** The regression `latest` shows against earlier evals, or null when within the threshold. */
export function lossRegression(earlier: Eval[], latest: Eval, maxLossRise: number): Regression | null {
  let best: Eval | undefined;
  for (const e of earlier) if (e.version < latest.version && Number.isFinite(e.loss) && (!best || e.loss < best.loss)) best = e;
  if (!best) return null;
  const rise = Number.isFinite(latest.loss) ? latest.loss - best.loss : Infinity;
  if (rise <= maxLossRise) return null;
  return { version: latest.version, loss: latest.loss, bestVersion: best.version, bestLoss: best.loss, rise, maxLossRise };
}
