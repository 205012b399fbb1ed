// When a swarm round closes, and so how big it is (K), as volunteers come and go.
//
// Rule: a round closes once it has been open for the job's target round time T and holds at least
// `quorum` updates. K is then whatever arrived in T: K ≈ N · T / task time, following the swarm as it
// grows and shrinks with no estimate to lag behind (an earlier version closed at K = measured rate × T:
// while a swarm grew, the rate lagged, rounds closed early, and updates went stale; bench/swarm.ts).
// The K shown on /metrics is the measured arrival rate × T.
//
// Why a target time and not a fixed K: an update's staleness is the number of rounds closed while it
// trained, about its task time / T, and the relay refuses it past `stalenessBound`. With tasks sized to
// about `targetTaskMs` (./pace.ts) and deadlines up to ~2× that, T = 2 · targetTaskMs / stalenessBound
// keeps even late updates within the bound at any N, while a fixed K closes rounds N/K times faster as
// the swarm grows and refuses ever more of its work as too stale (bench/swarm.ts prints the rule against
// T halved and doubled and against a fixed K). Bigger rounds at fixed T are DiLoCo's larger outer batch
// (Douillard et al., arXiv 2311.08105), and one outer Nesterov step per round of arrivals is the
// "delayed Nesterov" of asynchronous local-SGD (Liu, Douillard et al., arXiv 2401.09135): momentum moves
// once per buffer of arrivals, never once per stale pseudo-gradient.

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

/** K a round of T collects at the arrival rate now (for /metrics and the dashboard). */
export function roundSize(ratePerMs: number, s: RoundSizeSettings): number {
  return Math.max(s.quorum, Math.round(ratePerMs * s.targetRoundMs));
}

/** Whether the round closes now: its time is up, with a quorum. */
export function roundDue(pending: number, roundAgeMs: number, s: RoundSizeSettings): boolean {
  return pending >= s.quorum && roundAgeMs >= s.targetRoundMs;
}
