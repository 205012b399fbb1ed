// Job status as a transition table: pending → running ⇄ paused, running/paused → done, and done → running
// only when an operator extends a done job's budget (./stopping.ts).
// Only running jobs hand out tasks and accept updates.
import type { JobStatus } from '../../shared/protocol/messages.ts';
import { RelayError } from '../errors.ts';

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

/** The next status, or a TT_ERR_BAD_TRANSITION naming what is allowed. */
export function transitionJob(from: JobStatus, to: JobStatus): JobStatus {
  if (!jobTransitions[from].includes(to)) {
    const allowed = jobTransitions[from].join(', ') || 'nothing (final)';
    throw new RelayError('TT_ERR_BAD_TRANSITION', `a ${from} job cannot become ${to}; from ${from} it can become: ${allowed}`);
  }
  return to;
}
