// The relay's refusals: the codes, statuses and messages of the one catalogue (shared/protocol/errors.ts),
// thrown as RelayError. Routes and the scheduler throw these; app.ts turns them into {"error": {code, message}}.
import { errorCatalogue, messageOf, statusOf, type ErrorCode } from '../shared/protocol/errors.ts';

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

export const fail = (code: ErrorCode, detail = ''): never => {
  throw new RelayError(code, detail);
};
