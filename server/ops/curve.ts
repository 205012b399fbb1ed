// A job's held-out curve as the pages draw it: every evaluation up to CURVE_POINTS, then every n-th, the
// latest and the best (what the guardrail compares against). A day of versions would otherwise be
// megabytes to every viewer every few seconds.
import type { Eval } from '../../shared/protocol/messages.ts';
import type { RelayStore } from '../store/types.ts';

export const CURVE_POINTS = 300;

export function curveReader(store: RelayStore) {
  return async (jobId: string): Promise<{ evals: Eval[]; evalCount: number }> => {
    const n = await store.countEvals(jobId);
    const step = Math.ceil(n / CURVE_POINTS);
    return { evalCount: n, evals: step <= 1 ? await store.listEvals(jobId) : await store.thinnedEvals(jobId, step) };
  };
}
