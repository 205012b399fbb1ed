// When the volunteer loop leases its next task while the current one trains. Late enough that the lease
// is not held idle (the relay hands out only a round's worth of leases, so a held lease can keep another
// volunteer waiting), early enough that lease + params + shard arrive before the current task ends.

/** Lead over the last prefetch's duration: network times wander, and waiting costs more than holding. */
const SAFETY = 2;

/**
 * Whether to start the prefetch before step `step` (1 ≤ step ≤ steps; `steps` means "training is done")
 * of a task that has spent `elapsedMs` on its first `step` steps. Until one prefetch has been timed,
 * halfway through the task.
 */
export function prefetchDue(steps: number, step: number, elapsedMs: number, lastPrefetchMs: number | undefined): boolean {
  if (step >= steps) return true;
  if (lastPrefetchMs === undefined) return step >= steps / 2;
  const stepMs = elapsedMs / Math.max(1, step);
  return (steps - step) * stepMs <= SAFETY * lastPrefetchMs + stepMs;
}
