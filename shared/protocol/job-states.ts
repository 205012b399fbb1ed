// A job's statuses and which may follow which: pending → running ⇄ paused, running/paused → done, and
// done → running only when an operator extends a done job's budget (server/scheduler/stopping.ts).
// Only running jobs hand out tasks and accept updates. Shared by the relay's store (which refuses any
// other transition atomically), its scheduler and the pages that offer an operator the next actions.
import type { JobStatus } from './messages.ts';

export const jobStates = {
  pending: 'submitted, waiting for an operator to approve it',
  running: 'handing out tasks and aggregating updates',
  paused: 'no new tasks; updates in flight for it are refused',
  done: 'finished (its stopping rule held, or an operator ended it); its checkpoints stay readable',
} as const satisfies Record<JobStatus, string>;

export const jobTransitions: Record<JobStatus, readonly JobStatus[]> = {
  pending: ['running'],
  running: ['paused', 'done'],
  paused: ['running', 'done'],
  done: ['running'],
};

export const canTransition = (from: JobStatus, to: JobStatus): boolean => jobTransitions[from].includes(to);

/** Why `from` cannot become `to`, naming what it can become. */
export const transitionRefusal = (from: JobStatus, to: JobStatus): string =>
  `a ${from} job cannot become ${to}; from ${from} it can become: ${jobTransitions[from].join(', ') || 'nothing (final)'}`;
