// What the volunteer loop reports, for UIs (the tab's page, the dashboard) and tests. One union on `type`.
import type { Task, UpdateAck } from '../protocol/messages.ts';

export type VolunteerState = 'registering' | 'fetching' | 'training' | 'uploading' | 'waiting' | 'paused' | 'stopped';

export type VolunteerEvent =
  /** the loop's main activity changed */
  | { type: 'state'; state: VolunteerState; detail?: string }
  | { type: 'registered'; volunteerId: string }
  | { type: 'task'; task: Task }
  /** a task saved before a reload is being trained again (its lease still runs) */
  | { type: 'resumed'; taskId: string }
  | { type: 'step'; taskId: string; step: number; steps: number; ms: number }
  | { type: 'trained'; taskId: string; losses: number[]; computeMs: number }
  /** bytes: frame sent; denseBytes: what the same update costs as dense fp32 */
  | { type: 'uploaded'; taskId: string; ack: UpdateAck; bytes: number; denseBytes: number; ms: number }
  /** the task was given up (lease expired, too stale, refused); the loop goes on */
  | { type: 'dropped'; taskId: string; code: string; reason: string }
  | { type: 'retry'; what: string; attempt: number; delayMs: number; reason: string }
  /** the job this loop worked on is done (its stopping rule held, or an operator ended it): it moves on */
  | { type: 'job-ended'; jobId: string; reason: string }
  | { type: 'error'; message: string };
