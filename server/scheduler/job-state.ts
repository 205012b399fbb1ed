// Job status as a transition table (shared/protocol/job-states.ts, where the store checks it too):
// pending → running ⇄ paused, running/paused → done, and done → running only when an operator extends
// a done job's budget (./stopping.ts). Only running jobs hand out tasks and accept updates.
import type { JobStatus } from '../../shared/protocol/messages.ts';
import { canTransition, jobStates, jobTransitions, transitionRefusal } from '../../shared/protocol/job-states.ts';
import { RelayError } from '../errors.ts';

export { jobStates, jobTransitions };

/** The next status, or a TT_ERR_BAD_TRANSITION naming what is allowed. */
export function transitionJob(from: JobStatus, to: JobStatus): JobStatus {
  if (!canTransition(from, to)) throw new RelayError('TT_ERR_BAD_TRANSITION', transitionRefusal(from, to));
  return to;
}
