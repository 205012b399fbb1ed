// A job's held-out curve as the pages draw it: every evaluation up to CURVE_POINTS, then every n-th, the
// latest and the best (what the guardrail compares against). A day of versions would otherwise be
// megabytes to every viewer every few seconds.
import type Database from 'better-sqlite3';
import type { Eval } from '../../shared/protocol/messages.ts';

export const CURVE_POINTS = 300;

/** `listEvals`: every evaluation of a job (the store's), for curves short enough to send whole. */
export function curveReader(db: Database.Database, listEvals: (jobId: string) => Eval[]) {
  const count = db.prepare<[string], { n: number }>('SELECT COUNT(*) AS n FROM evals WHERE job_id = ?');
  const thinned = db.prepare<{ job: string; step: number }, Eval>(`SELECT version, loss, accuracy, at FROM evals WHERE job_id = $job
    AND (version % $step = 0 OR version = (SELECT MAX(version) FROM evals WHERE job_id = $job)
      OR version = (SELECT version FROM evals WHERE job_id = $job ORDER BY loss, version LIMIT 1)) ORDER BY version`);
  return (jobId: string): { evals: Eval[]; evalCount: number } => {
    const n = count.get(jobId)!.n;
    const step = Math.ceil(n / CURVE_POINTS);
    return { evalCount: n, evals: step <= 1 ? listEvals(jobId) : thinned.all({ job: jobId, step }) };
  };
}
