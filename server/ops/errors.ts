// The operator plugin's refusals, with codes like the relay's catalogue (server/errors.ts). The relay's
// error handler passes any 4xx error with a `code` through as {"error": {code, message}}.
export const opsErrors = {
  TT_ERR_UNAUTHENTICATED: 401,
  TT_ERR_FORBIDDEN: 403,
  TT_ERR_JOB_SPEC: 400,
  TT_ERR_DATASET_TOO_LARGE: 413,
  TT_ERR_BAD_TRANSITION: 409,
  TT_ERR_UNKNOWN_JOB: 404,
  TT_ERR_UNKNOWN_VERSION: 404,
  TT_ERR_UNKNOWN_TOKEN: 404,
  TT_ERR_RATE_LIMITED: 429,
  TT_ERR_PENDING_LIMIT: 429,
} as const;

export type OpsErrorCode = keyof typeof opsErrors;

export class OpsError extends Error {
  readonly statusCode: number;
  /** seconds a client should wait before retrying (sent as Retry-After) */
  retryAfterSeconds?: number;
  constructor(readonly code: OpsErrorCode, message: string, readonly field?: string) {
    super(message);
    this.name = 'OpsError';
    this.statusCode = opsErrors[code];
  }
}
