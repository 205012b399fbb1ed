// A returning volunteer's error-feedback residual, when its base is too old: dropped, not rescaled.
//
// The residual is what compression left out of updates computed against the version the volunteer last
// trained on. Once the job has moved more than its staleness bound past that version, the relay would
// refuse those updates themselves as too stale; adding their leftovers to a fresh update would push the
// new version along directions the swarm has since moved past (and the outer momentum would carry them
// on). Rescaling by a staleness weight keeps a stale direction, only smaller, and error feedback's
// guarantee holds only for a bounded delay. What dropping costs is bounded: at most one task's
// compression error (under half a quantisation step per value for int8).

/** Whether a residual saved after training on `residualBase` may go into an update based on `taskBase`.
 * `maxAge` absent (the relay does not say): always kept, as before. A base unknown (saved by an older
 * build) counts as too old only when the relay gives a bound. */
export function keepResidual(residualBase: number | undefined, taskBase: number, maxAge: number | undefined): boolean {
  if (maxAge === undefined) return true;
  if (residualBase === undefined) return false;
  return taskBase - residualBase <= maxAge;
}
