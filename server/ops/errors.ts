// The operator plugin's refusals: codes and statuses of the one catalogue (shared/protocol/errors.ts),
// with a message the thrower writes in full. The relay's error handler passes any 4xx error with a `code`
// through as {"error": {code, message}}.
import { statusOf, type ErrorCode } from '../../shared/protocol/errors.ts';

/** The catalogue's codes the operator plugin throws. */
export type OpsErrorCode = Extract<ErrorCode,
  | 'TT_ERR_UNAUTHENTICATED' | 'TT_ERR_FORBIDDEN' | 'TT_ERR_JOB_SPEC' | 'TT_ERR_DATASET_TOO_LARGE' | 'TT_ERR_BAD_TRANSITION'
  | 'TT_ERR_UNKNOWN_JOB' | 'TT_ERR_UNKNOWN_VERSION' | 'TT_ERR_UNKNOWN_TOKEN' | 'TT_ERR_RATE_LIMITED' | 'TT_ERR_PENDING_LIMIT'>;

export class OpsError extends Error {
  readonly statusCode: number;
  /** seconds a client should wait before retrying (sent as Retry-After) */
  retryAfterSeconds?: number;
  constructor(readonly code: OpsErrorCode, message: string, readonly field?: string) {
    super(message);
    this.name = 'OpsError';
    this.statusCode = statusOf(code);
  }
}
