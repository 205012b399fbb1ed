// What the volunteer loop reports, for UIs (the tab's page, the dashboard) and tests. One union on `type`.
import type { AnyErrorCode } from '../protocol/errors.ts';
import type { Task, UpdateAck } from '../protocol/messages.ts';

/** Where a volunteer is in its work, one word each: the loop reports the middle ones; a host adds
 * 'starting' (before the loop runs) and 'error' (the loop stopped), and shows 'registering' as fetching. */
export type Phase = 'starting' | 'registering' | 'fetching' | 'training' | 'uploading' | 'waiting' | 'paused' | 'stopped' | 'error';

export type VolunteerEvent =
  /** the loop's main activity changed */
  | { type: 'state'; state: Phase; detail?: string }
  | { type: 'registered'; volunteerId: string }
  | { type: 'task'; task: Task }
  /** a task saved before a reload is being trained again (its lease still runs) */
  | { type: 'resumed'; taskId: string }
  /** a task's base parameters were downloaded whole, or rebuilt from this many published deltas */
  | { type: 'params'; taskId: string; version: number; source: 'seed' | 'deltas' | 'params'; deltas: number }
  | { type: 'step'; taskId: string; step: number; steps: number; ms: number }
  | { type: 'trained'; taskId: string; losses: number[]; computeMs: number }
  /** bytes: frame sent; denseBytes: what the same update costs as dense fp32 */
  | { type: 'uploaded'; taskId: string; ack: UpdateAck; bytes: number; denseBytes: number; ms: number }
  /** the task was given up (lease expired, too stale, refused); the loop goes on */
  | { type: 'dropped'; taskId: string; code: AnyErrorCode; reason: string }
  /** the stored error-feedback residual was older than the relay takes, so it was not sent (./residual-age.ts) */
  | { type: 'residual-dropped'; taskId: string }
  | { type: 'retry'; what: string; attempt: number; delayMs: number; reason: string }
  /** the relay in use stopped answering (refused, no answer in time, 5xx): the loop goes on with the next */
  | { type: 'failover'; from: string; to: string; reason: string }
  /** the job this loop worked on is done (its stopping rule held, or an operator ended it): it moves on */
  | { type: 'job-ended'; jobId: string; reason: string }
  /** this device cannot hold the job's model at its batch size (the relay said so, or the loop's own
   * check before downloading): the loop looks for another job, or asks again later */
  | { type: 'unfit'; jobId: string; reason: string }
  | { type: 'error'; message: string };
