// Every refusal the relay makes, once: code, HTTP status and a message that names the field and what to
// do next. Clients and tests match on the code, never on the wording.
export const errors = {
  TT_ERR_BAD_JSON: { status: 400, message: (d: string) => `request body is not valid JSON (${d}); send a JSON object` },
  TT_ERR_VALIDATION: { status: 400, message: (d: string) => `request is invalid: ${d}` },
  TT_ERR_CONTENT_TYPE: { status: 415, message: (d: string) => d },
  TT_ERR_BODY_TOO_LARGE: { status: 413, message: (d: string) => d },
  TT_ERR_BAD_FRAME: { status: 400, message: (d: string) => `update frame is malformed: ${d}` },
  TT_ERR_BAD_UPDATE: { status: 400, message: (d: string) => `update payload is invalid: ${d}` },
  TT_ERR_PARAM_COUNT: { status: 400, message: (d: string) => d },
  TT_ERR_UPDATE_NORM: { status: 422, message: (d: string) => d },
  TT_ERR_UNKNOWN_JOB: { status: 404, message: (d: string) => `no job with id "${d}"; list jobs with GET /api/jobs` },
  TT_ERR_UNKNOWN_TASK: { status: 404, message: (d: string) => `no task with id "${d}"; lease a task with POST /api/jobs/:jobId/tasks` },
  TT_ERR_UNKNOWN_VERSION: { status: 404, message: (d: string) => d },
  TT_ERR_UNKNOWN_SHARD: { status: 404, message: (d: string) => d },
  TT_ERR_UNKNOWN_VOLUNTEER: { status: 404, message: (d: string) => `no volunteer with id "${d}"; register with POST /api/volunteers` },
  TT_ERR_LEASE_INVALID: { status: 403, message: (d: string) => `lease is not valid: ${d}; send the lease the relay gave with this task` },
  TT_ERR_LEASE_EXPIRED: { status: 409, message: (d: string) => `lease of task ${d} has expired and the task was re-issued; drop it and lease a new task` },
  TT_ERR_LEASE_USED: { status: 409, message: (d: string) => `lease of task ${d} was already used for a different update; lease a new task` },
  TT_ERR_TOO_STALE: { status: 409, message: (d: string) => d },
  TT_ERR_JOB_NOT_RUNNING: { status: 409, message: (d: string) => d },
  TT_ERR_ADAPTER_TOO_SMALL: { status: 422, message: (d: string) => d },
  TT_ERR_BAD_TRANSITION: { status: 409, message: (d: string) => d },
  // defences against untrusted volunteers (server/defence)
  TT_ERR_IDENTITY_REQUIRED: { status: 400, message: (d: string) => d },
  TT_ERR_POW: { status: 403, message: (d: string) => `proof of work refused: ${d}` },
  TT_ERR_SIGNATURE: { status: 403, message: (d: string) => `upload signature refused: ${d}` },
  TT_ERR_REQUEST_SIGNATURE: { status: 403, message: (d: string) => `task request refused: ${d}` },
  TT_ERR_REQUEST_TIME: { status: 401, message: (d: string) => `task request refused: ${d}` },
  TT_ERR_RATE_LIMITED: { status: 429, message: (d: string) => `too many requests: ${d}` },
  TT_ERR_VOLUNTEER_BANNED: { status: 403, message: (d: string) => d },
  TT_ERR_EMPTY_UPDATE: { status: 422, message: (d: string) => d },
  TT_ERR_NOT_USEFUL: { status: 422, message: (d: string) => `update does not lower the loss on its own batch: ${d}` },
  TT_ERR_NOT_FOUND: { status: 404, message: (d: string) => `no route ${d}; see docs/protocol.md` },
  TT_ERR_INTERNAL: { status: 500, message: () => 'the relay failed on its side; retry later' },
} as const;

export type ErrorCode = keyof typeof errors;

export class RelayError extends Error {
  readonly statusCode: number;
  constructor(readonly code: ErrorCode, detail = '') {
    super(errors[code].message(detail));
    this.name = 'RelayError';
    this.statusCode = errors[code].status;
  }
}

export const fail = (code: ErrorCode, detail = ''): never => {
  throw new RelayError(code, detail);
};
