// Asynchronous swarm scheduling for jobs with hyperparameters.swarm set to settings (absent or false: the
// round scheduler's K + 1 leases, fixed H and lease length). Every volunteer that asks gets a task on the newest version, limited
// only by the job's maxConcurrentTasks, two live tasks per volunteer (the one training and the one
// fetched ahead), the staleness bound and the rate limits. Each task's H and deadline follow its
// volunteer's measured pace (./pace.ts); rounds close by the live-task rule (./round-size.ts).
// In memory: paces are relearnt within a few uploads after a restart.
import type { Hyperparameters, Swarm } from '../../shared/protocol/messages.ts';
import { createPace, type PaceOptions, type TaskPlan } from './pace.ts';
import { createSpread, defaultTargetRoundMs, roundDue, roundSize, type RoundSizeSettings } from './round-size.ts';

export const DEFAULT_TARGET_TASK_MS = 60_000;
/** See ./outer-gain.ts. */
export const DEFAULT_MAX_OUTER_GAIN = 1;
/** Live tasks one volunteer may hold on a job: the one it trains and the one it fetched ahead. */
export const TASKS_PER_VOLUNTEER = 2;

export type SwarmSettings = Required<Omit<Swarm, 'maxConcurrentTasks'>> & { maxConcurrentTasks?: number };

/** Whether the job runs on the swarm: when it sets swarm settings (`{}` takes every default). `false` says
 * the round scheduler explicitly. Not yet every job's default: the relay's default MNIST job (outer lr 0.7,
 * Nesterov 0.9, tuned on fresh rounds) on the swarm, four CPU volunteers with most updates one or two
 * versions stale, tripped its loss guardrail within a minute, and the rollbacks' strikes banned its
 * honest volunteers. */
export const isSwarm = (h: Hyperparameters): boolean => h.swarm !== undefined && h.swarm !== false;

/** The job's swarm settings with defaults filled in. */
export function swarmSettings(h: Hyperparameters): SwarmSettings {
  const s = h.swarm || {};
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
  /** Steps, lease length and expected duration of live swarm tasks, to learn from their expiry and size rounds. */
  const live = new Map<string, { jobId: string; steps: number; leaseMs: number; expectedMs?: number }>();
  /** Each job's spread of its live tasks' expected durations (./round-size.ts), from this relay's leases. */
  const spreads = new Map<string, ReturnType<typeof createSpread>>();
  const spreadOf = (jobId: string) => {
    let s = spreads.get(jobId);
    if (!s) spreads.set(jobId, (s = createSpread()));
    return s;
  };
  const end = (taskId: string) => {
    const l = live.get(taskId);
    live.delete(taskId);
    if (l?.expectedMs !== undefined) spreadOf(l.jobId).remove(l.expectedMs);
    return l;
  };
  const roundSettings = (h: Hyperparameters): RoundSizeSettings => ({
    quorum: h.quorum, targetRoundMs: swarmSettings(h).targetRoundMs, updatesPerRound: h.updatesPerRound, stalenessBound: h.stalenessBound,
  });

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
    issued(taskId: string, jobId: string, plan: { steps: number; leaseMs: number; expectedMs?: number }): void {
      const expectedMs = plan.expectedMs !== undefined && plan.expectedMs > 0 && Number.isFinite(plan.expectedMs) ? plan.expectedMs : undefined;
      live.set(taskId, { jobId, steps: plan.steps, leaseMs: plan.leaseMs, expectedMs });
      if (expectedMs !== undefined) spreadOf(jobId).add(expectedMs);
    },
    /** An accepted update: the volunteer's pace. */
    accepted(taskId: string, volunteerId: string, steps: number, computeMs: number, wallMs: number): void {
      end(taskId);
      pace.record(volunteerId, steps, computeMs, wallMs);
    },
    /** A task that ended without an update (refused or expired). */
    ended(taskId: string, volunteerId: string, expired: boolean): void {
      const l = end(taskId);
      if (l && expired) pace.expired(volunteerId, l.steps, l.leaseMs);
    },
    /** K for the job's round with `liveTasks` out. */
    k(jobId: string, h: Hyperparameters, liveTasks: number): number {
      return roundSize(liveTasks, roundSettings(h), spreadOf(jobId).value());
    },
    /** Whether the job's round closes now. */
    due(jobId: string, h: Hyperparameters, pending: number, liveTasks: number, roundAgeMs: number): boolean {
      return roundDue(pending, liveTasks, roundAgeMs, roundSettings(h), spreadOf(jobId).value());
    },
  };
}
export type SwarmPolicy = ReturnType<typeof createSwarm>;
