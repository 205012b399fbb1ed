// What storage says went wrong, in storage's words: no HTTP status in here. Routes map these to the
// relay's error catalogue (server/errors.ts storeErrorToRelay), so every store (SQLite, Postgres)
// refuses the same way and the answers volunteers and operators get do not depend on which one runs.
import type { JobStatus } from '../../shared/protocol/messages.ts';
import { transitionRefusal } from '../../shared/protocol/job-states.ts';

export abstract class StoreError extends Error {}

export type Entity = 'job' | 'version' | 'task' | 'volunteer';

/** The named row is not stored (or no longer: retention, rollback). `detail`: what to tell a client. */
export class NotFoundError extends StoreError {
  constructor(readonly entity: Entity, readonly id: string, detail?: string) {
    super(detail ?? `no ${entity} "${id}"`);
    this.name = 'NotFoundError';
  }
}

/** A job status change the transition table (shared/protocol/job-states.ts) does not allow. */
export class IllegalTransitionError extends StoreError {
  constructor(readonly jobId: string, readonly from: JobStatus, readonly to: JobStatus) {
    super(transitionRefusal(from, to));
    this.name = 'IllegalTransitionError';
  }
}

/** A write that lost a race: the row changed since the caller read it (another request or relay). */
export class ConflictError extends StoreError {
  constructor(message: string) {
    super(message);
    this.name = 'ConflictError';
  }
}

/** The store was used wrongly (a closed store, the outer handle inside a transaction): a bug, never a client's fault. */
export class StoreUsageError extends StoreError {
  constructor(message: string) {
    super(message);
    this.name = 'StoreUsageError';
  }
}
