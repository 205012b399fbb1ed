// The relay's refusals: the codes, statuses and messages of the one catalogue (shared/protocol/errors.ts),
// thrown as RelayError. Routes and the scheduler throw these; app.ts turns them into {"error": {code, message}}.
import { errorCatalogue, messageOf, statusOf, type ErrorCode } from '../shared/protocol/errors.ts';
import { ConflictError, IllegalTransitionError, NotFoundError, type StoreError } from './store/errors.ts';

export { type ErrorCode } from '../shared/protocol/errors.ts';
/** The catalogue, under the name the relay has always used. */
export const errors = errorCatalogue;

export class RelayError extends Error {
  readonly statusCode: number;
  /** seconds a client should wait before retrying (sent as Retry-After) */
  retryAfterSeconds?: number;
  constructor(readonly code: ErrorCode, detail = '') {
    super(messageOf(code, detail));
    this.name = 'RelayError';
    this.statusCode = statusOf(code);
  }
}

/** Storage's refusals (server/store/errors.ts) as the relay answers them. */
export function storeErrorToRelay(e: StoreError): RelayError {
  if (e instanceof NotFoundError) {
    if (e.entity === 'job') return new RelayError('TT_ERR_UNKNOWN_JOB', e.id);
    if (e.entity === 'task') return new RelayError('TT_ERR_UNKNOWN_TASK', e.id);
    if (e.entity === 'volunteer') return new RelayError('TT_ERR_UNKNOWN_VOLUNTEER', e.id);
    return new RelayError('TT_ERR_UNKNOWN_VERSION', e.message);
  }
  if (e instanceof IllegalTransitionError) return new RelayError('TT_ERR_BAD_TRANSITION', e.message);
  if (e instanceof ConflictError) return new RelayError('TT_ERR_CONFLICT', e.message);
  return new RelayError('TT_ERR_INTERNAL');
}

export const fail = (code: ErrorCode, detail = ''): never => {
  throw new RelayError(code, detail);
};
