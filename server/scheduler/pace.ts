// Work sized to the device: each volunteer's time per inner step, learned from its own uploads, sets the
// steps H of its next task (so a task takes about the job's target time) and its lease's deadline.
// This is "dynamic local updates" of asynchronous local-SGD (Liu, Douillard et al., arXiv 2401.09135):
// H proportional to the worker's speed, so fast and slow workers finish at about the same wall time and
// no update arrives many versions late just because its device is slow.
//
// What a volunteer reports cannot hurt anyone else: estimates are per volunteer (nobody's deadline is
// read from another's times), `computeMs` is capped by the relay at the time the lease was really out
// (scheduler intake), per-step times are clamped to [MIN_STEP_MS, the whole lease], H to [minSteps,
// maxSteps], and deadlines to [minLeaseMs, maxLeaseMs]. A 0 ms claim gives the largest task and a
// deadline from the relay's own clock (elapsed time, never the claim); 1e12 ms gives the smallest task.
// In memory only: after a restart every volunteer is new again and gets a short first task.

/** A step faster than this is a claim, not a measurement (a coarse timer or a lie). */
export const MIN_STEP_MS = 0.1;

export type PaceSettings = {
  /** the job's nominal H (hyperparameters.steps): a new volunteer's first task is an eighth of it */
  steps: number;
  /** wall time a task should take on its volunteer's device */
  targetTaskMs: number;
  minSteps: number; maxSteps: number;
  /** the job's fixed lease (hyperparameters.leaseMs): a new volunteer's deadline, and the upper bound */
  leaseMs: number;
};
/** `expectedMs`: how long the task should be out, from its volunteer's recent wall time per step (absent
 * for a new volunteer's first task). */
export type TaskPlan = { steps: number; leaseMs: number; measured: boolean; expectedMs?: number };

export type PaceOptions = {
  /** uploads remembered per volunteer (default 8) */
  history?: number;
  /** percentile of recent wall time per step the deadline is set from (default 0.9) */
  percentile?: number;
  /** deadline = percentile × H × factor + slackMs (defaults 1.5 and 10 s) */
  factor?: number; slackMs?: number;
  /** volunteers remembered at most (least recently seen forgotten first; default 100,000) */
  maxVolunteers?: number;
};

type Record_ = { computePerStep: number[]; wallPerStep: number[] };

export function createPace(o: PaceOptions = {}) {
  const history = o.history ?? 8, pct = o.percentile ?? 0.9, factor = o.factor ?? 1.5, slack = o.slackMs ?? 10_000;
  const maxVolunteers = o.maxVolunteers ?? 100_000;
  const byVolunteer = new Map<string, Record_>();

  const push = (xs: number[], x: number) => { xs.push(x); if (xs.length > history) xs.shift(); };
  const quantile = (xs: number[], q: number) => {
    const s = [...xs].sort((a, b) => a - b);
    return s[Math.min(s.length - 1, Math.floor(q * s.length))];
  };
  const median = (xs: number[]) => quantile(xs, 0.5);

  return {
    /** One accepted upload: its steps, the compute time it claims, and the wall time its lease was out. */
    record(volunteerId: string, steps: number, computeMs: number, wallMs: number): void {
      if (!(steps >= 1)) return;
      const wall = Number.isFinite(wallMs) && wallMs > 0 ? wallMs : 0;
      // the claim is informative only: never more than the wall time, never below the floor
      const compute = Number.isFinite(computeMs) ? Math.min(Math.max(computeMs, 0), wall) : wall;
      let r = byVolunteer.get(volunteerId);
      if (r) byVolunteer.delete(volunteerId); // re-inserted: least recently seen first
      else r = { computePerStep: [], wallPerStep: [] };
      byVolunteer.set(volunteerId, r);
      push(r.computePerStep, Math.max(MIN_STEP_MS, compute / steps));
      push(r.wallPerStep, Math.max(MIN_STEP_MS, wall / steps));
      if (byVolunteer.size > maxVolunteers) byVolunteer.delete(byVolunteer.keys().next().value!);
    },
    /** Its lease ran out: it is slower than it looked (or gone), so its next task halves. */
    expired(volunteerId: string, steps: number, leaseMs: number): void {
      const r = byVolunteer.get(volunteerId);
      if (!r || !(steps >= 1)) return;
      const perStep = Math.max(MIN_STEP_MS, leaseMs / steps);
      push(r.computePerStep, Math.max(perStep, 2 * median(r.computePerStep)));
      push(r.wallPerStep, Math.max(perStep, 2 * median(r.wallPerStep)));
    },
    /** H and lease length for this volunteer's next task. */
    plan(volunteerId: string, s: PaceSettings): TaskPlan {
      const clampSteps = (h: number) => Math.max(s.minSteps, Math.min(s.maxSteps, Math.floor(h)));
      const minLease = Math.min(s.leaseMs, s.targetTaskMs);
      const r = byVolunteer.get(volunteerId);
      // new: a short first task (an eighth of the job's H) on the job's fixed lease, to measure the device;
      // short enough that a device 5× slower than the median still lands it within the staleness bound
      if (!r) return { steps: clampSteps(Math.ceil(s.steps / 8)), leaseMs: s.leaseMs, measured: false };
      const steps = clampSteps(s.targetTaskMs / median(r.computePerStep));
      const lease = quantile(r.wallPerStep, pct) * steps * factor + slack;
      const leaseMs = Math.round(Math.max(minLease, Math.min(s.leaseMs, lease)));
      return { steps, leaseMs, measured: true, expectedMs: Math.min(leaseMs, median(r.wallPerStep) * steps) };
    },
    /** Volunteers whose pace is known. */
    known: (): number => byVolunteer.size,
  };
}
export type Pace = ReturnType<typeof createPace>;
