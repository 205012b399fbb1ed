// Asynchronous swarm scheduling for jobs with hyperparameters.swarm (absent: the round scheduler's K + 1
// leases, fixed H and lease length). Every volunteer that asks gets a task on the newest version, limited
// only by the job's maxConcurrentTasks, two live tasks per volunteer (the one training and the one
// fetched ahead), the staleness bound and the rate limits. Each task's H and deadline follow its
// volunteer's measured pace (./pace.ts); rounds close by the arrival-rate rule (./round-size.ts).
// In memory: paces and arrival rates are relearnt within a few uploads after a restart.
import type { Hyperparameters, Swarm } from '../../shared/protocol/messages.ts';
import { createPace, type PaceOptions, type TaskPlan } from './pace.ts';
import { createArrivalRate, defaultTargetRoundMs, roundDue, roundSize, type ArrivalRate, type RoundSizeSettings } from './round-size.ts';

export const DEFAULT_TARGET_TASK_MS = 60_000;
/** See ./outer-gain.ts. */
export const DEFAULT_MAX_OUTER_GAIN = 1;
/** Live tasks one volunteer may hold on a job: the one it trains and the one it fetched ahead. */
export const TASKS_PER_VOLUNTEER = 2;

export type SwarmSettings = Required<Omit<Swarm, 'maxConcurrentTasks'>> & { maxConcurrentTasks?: number };

export const isSwarm = (h: Hyperparameters): boolean => h.swarm !== undefined;

/** The job's swarm settings with defaults filled in. */
export function swarmSettings(h: Hyperparameters): SwarmSettings {
  const s = h.swarm ?? {};
  const targetTaskMs = s.targetTaskMs ?? DEFAULT_TARGET_TASK_MS;
  const minSteps = s.minSteps ?? 1;
  return {
    targetTaskMs, targetRoundMs: s.targetRoundMs ?? defaultTargetRoundMs(targetTaskMs, h.stalenessBound),
    // H is only ever shrunk below the job's own by default: a fast device runs more tasks, not longer
    // ones. Measured (bench/swarm.ts, 10 volunteers, equal samples and versions): fast devices on up to
    // 8 × H reached 57 % held-out accuracy, capped at H 88 %. Their long local runs, folded FedNova-style,
    // count for one nominal task; folded raw, they overshoot the outer step tuned for H.
    minSteps, maxSteps: Math.max(minSteps, s.maxSteps ?? h.steps), maxConcurrentTasks: s.maxConcurrentTasks,
    maxOuterGain: s.maxOuterGain ?? DEFAULT_MAX_OUTER_GAIN,
  };
}

export function createSwarm(o: { pace?: PaceOptions } = {}) {
  const pace = createPace(o.pace);
  const rates = new Map<string, ArrivalRate>();
  /** Steps and lease length of live swarm tasks, to learn from their expiry. */
  const live = new Map<string, { steps: number; leaseMs: number }>();
  const rateOf = (jobId: string, s: SwarmSettings) => {
    let r = rates.get(jobId);
    if (!r) rates.set(jobId, (r = createArrivalRate(2 * s.targetRoundMs)));
    return r;
  };
  const roundSettings = (h: Hyperparameters): RoundSizeSettings => ({ quorum: h.quorum, targetRoundMs: swarmSettings(h).targetRoundMs });

  return {
    pace,
    /** Whether one more task may go out: under maxConcurrentTasks, and the volunteer's own two. */
    mayLease(h: Hyperparameters, liveTasks: number, liveOfVolunteer: number): boolean {
      const cap = swarmSettings(h).maxConcurrentTasks;
      return (cap === undefined || liveTasks < cap) && liveOfVolunteer < TASKS_PER_VOLUNTEER;
    },
    /** H and lease length for this volunteer's next task on the job. */
    plan(volunteerId: string, h: Hyperparameters): TaskPlan {
      const s = swarmSettings(h);
      return pace.plan(volunteerId, { steps: h.steps, targetTaskMs: s.targetTaskMs, minSteps: s.minSteps, maxSteps: s.maxSteps, leaseMs: h.leaseMs });
    },
    issued(taskId: string, steps: number, leaseMs: number): void { live.set(taskId, { steps, leaseMs }); },
    /** An accepted update: the volunteer's pace, and the job's arrival rate. */
    accepted(jobId: string, h: Hyperparameters, taskId: string, volunteerId: string, steps: number, computeMs: number, wallMs: number, t: number): void {
      live.delete(taskId);
      pace.record(volunteerId, steps, computeMs, wallMs);
      rateOf(jobId, swarmSettings(h)).arrived(t);
    },
    /** A task that ended without an update (refused or expired). */
    ended(taskId: string, volunteerId: string, expired: boolean): void {
      const l = live.get(taskId);
      live.delete(taskId);
      if (l && expired) pace.expired(volunteerId, l.steps, l.leaseMs);
    },
    /** K for the job's round now. */
    k(jobId: string, h: Hyperparameters, t: number): number {
      return roundSize(rateOf(jobId, swarmSettings(h)).perMs(t), roundSettings(h));
    },
    /** Whether the job's round closes now. */
    due(h: Hyperparameters, pending: number, roundAgeMs: number): boolean {
      return roundDue(pending, roundAgeMs, roundSettings(h));
    },
  };
}
export type SwarmPolicy = ReturnType<typeof createSwarm>;
