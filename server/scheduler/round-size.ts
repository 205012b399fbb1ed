// When a swarm round closes, and so how big it is (K), as volunteers come and go.
//
// Rule: a round closes when K = max(quorum, round(rate × T)) updates are in, where rate is the measured
// arrival rate of accepted updates (exponentially decayed over `windowMs`) and T the job's target round
// time; or when T has passed with at least `quorum` in (the swarm shrank faster than the rate forgot it).
// So a round takes about T at any swarm size, and K follows the swarm: K ≈ N · T / task time.
//
// Why a target time and not a fixed K: an update's staleness is the number of rounds closed while it
// trained, about its task time / T, and the relay refuses it past `stalenessBound`. With tasks sized to
// about `targetTaskMs` (./pace.ts) and deadlines up to ~2× that, T = 2 · targetTaskMs / stalenessBound
// keeps even late updates within the bound at any N, while a fixed K closes rounds N/K times faster as
// the swarm grows and refuses ever more of its work as too stale (bench/swarm.ts prints both: the rule's
// staleness and the refusals of T halved). Bigger rounds at fixed T are DiLoCo's larger outer batch
// (Douillard et al., arXiv 2311.08105), and one outer Nesterov step per K arrivals is the "delayed
// Nesterov" of asynchronous local-SGD (Liu, Douillard et al., arXiv 2401.09135): momentum is updated
// once per buffer of arrivals, never per stale pseudo-gradient.

export type RoundSizeSettings = { quorum: number; targetRoundMs: number };

/** The default target round time for a job (see the rule above), at least 1 s. */
export const defaultTargetRoundMs = (targetTaskMs: number, stalenessBound: number): number =>
  Math.max(1_000, Math.round((2 * targetTaskMs) / Math.max(1, stalenessBound)));

export function createArrivalRate(windowMs: number) {
  let rate = 0, at: number | undefined;
  const decay = (t: number) => {
    if (at !== undefined && t > at) rate *= Math.exp(-(t - at) / windowMs);
    at = at === undefined ? t : Math.max(at, t);
  };
  return {
    /** One accepted update at time t. */
    arrived(t: number): void { decay(t); rate += 1 / windowMs; },
    /** Accepted updates per ms, as of time t. */
    perMs(t: number): number { decay(t); return rate; },
  };
}
export type ArrivalRate = ReturnType<typeof createArrivalRate>;

/** K for a round, from the arrival rate now. */
export function roundSize(ratePerMs: number, s: RoundSizeSettings): number {
  return Math.max(s.quorum, Math.round(ratePerMs * s.targetRoundMs));
}

/** Whether the round closes now: K in, or its time is up with a quorum. */
export function roundDue(pending: number, k: number, roundAgeMs: number, s: RoundSizeSettings): boolean {
  return pending >= k || (pending >= s.quorum && roundAgeMs >= s.targetRoundMs);
}
