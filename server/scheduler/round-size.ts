// When a swarm round closes, and so how big it is (K), as volunteers come and go.
//
// Rule: a round closes at K = max(updatesPerRound, ⌈2 · L · A / stalenessBound⌉) arrivals, L being the
// job's live tasks (leased, not yet uploaded or expired) at that moment and A ≥ 1 the spread of their
// expected durations (their mean times the mean of their inverses: 1 when all take as long); or, with
// fewer, once it has been open for the job's target round time T and holds at least `quorum` updates.
//
// Why L: an update's staleness is the number of rounds that close while its task is out. Were all tasks
// as long, about L others land while one is out, and closing every 2L/S arrivals a task sees about S/2
// closes: half the staleness bound, leaving the other half for the late and the fetched-ahead. Tasks of
// unequal length land at Σ 1/dᵢ, faster than L per mean duration by A (fast devices run short tasks when
// H is capped at the job's own, ./swarm.ts): without A, at 100 volunteers of 30× spread rounds closed
// twice as often as T and 4 % of updates were refused as too stale (bench/swarm.ts). The relay counts L
// exactly and knows each live task's expected duration from its volunteer's pace (./pace.ts), so K follows
// a swarm as it grows or shrinks at once; an arrival-rate estimate lags it (an earlier rule closed at
// K = measured rate × T: while a swarm grew, rounds closed early and updates went stale). updatesPerRound
// is the floor, so a small job behaves as before the swarm: two volunteers on K = 2 get a version per two
// uploads.
//
// Why T as well: with few arrivals per task time (a slow or shrinking swarm), the count may take longer
// than tasks should wait for a new version; T = 2 · targetTaskMs / stalenessBound keeps even late updates
// within the bound (tasks are sized to about targetTaskMs, ./pace.ts; deadlines are up to ~2× that).
// A fixed K instead closes rounds N/K times faster as the swarm grows and refuses ever more of its work as
// too stale (bench/swarm.ts, SWARM_SWEEP=1, prints the time rule against T halved, doubled and a fixed K).
//
// Bigger rounds are DiLoCo's larger outer batch (Douillard et al., arXiv 2311.08105), and one outer
// Nesterov step per round of arrivals is the "delayed Nesterov" of asynchronous local-SGD (Liu, Douillard
// et al., arXiv 2401.09135): momentum moves once per buffer of arrivals, never once per stale
// pseudo-gradient. A volunteer's task fetched ahead, trained while its last update goes up and landing one
// version late, is DiLoCoX's one-step-delay overlap (arXiv 2506.21263): the factor 2 above leaves room for it.

export type RoundSizeSettings = { quorum: number; targetRoundMs: number; updatesPerRound: number; stalenessBound: number };

/** The default target round time for a job (see the rule above), at least 1 s. */
export const defaultTargetRoundMs = (targetTaskMs: number, stalenessBound: number): number =>
  Math.max(1_000, Math.round((2 * targetTaskMs) / Math.max(1, stalenessBound)));

/** K: the arrivals that close a round with `live` tasks out whose durations spread by `spread` (the rule above). */
export function roundSize(live: number, s: RoundSizeSettings, spread = 1): number {
  const a = Number.isFinite(spread) ? Math.max(1, spread) : 1;
  return Math.max(s.updatesPerRound, Math.ceil((2 * Math.max(0, live) * a) / Math.max(1, s.stalenessBound)));
}

/** Whether the round closes now: K are in, or its time is up with a quorum. */
export function roundDue(pending: number, live: number, roundAgeMs: number, s: RoundSizeSettings, spread = 1): boolean {
  return pending >= roundSize(live, s, spread) || (pending >= s.quorum && roundAgeMs >= s.targetRoundMs);
}

/** The spread A of the live tasks' expected durations (the rule above), kept as running sums. */
export function createSpread() {
  let n = 0, sum = 0, inv = 0;
  return {
    add(ms: number): void { n++; sum += ms; inv += 1 / ms; },
    remove(ms: number): void {
      n--; sum -= ms; inv -= 1 / ms;
      if (n <= 0) n = sum = inv = 0; // no drift carried past an empty job
    },
    /** mean × mean of inverses, ≥ 1 (1 with none known) */
    value: (): number => (n > 0 ? Math.max(1, (sum / n) * (inv / n)) : 1),
  };
}
