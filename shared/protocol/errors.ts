// Every refusal the relay makes, once: code, HTTP status and a message that names what is wrong and what
// to do next. The relay throws with these codes (server/errors.ts, server/ops/errors.ts), clients match on
// them (typed: a misspelt code does not compile), and docs/protocol.md lists them. Clients and tests match
// on the code, never on the wording. A code's status never changes: clients rely on it.

type Entry = { readonly status: number; readonly message: (detail: string) => string };

/** Detail passed through as the message: the thrower writes the whole sentence. */
const said = (d: string) => d;

export const errorCatalogue = {
  // ---- request shape
  TT_ERR_BAD_JSON: { status: 400, message: (d) => `request body is not valid JSON (${d}); send a JSON object` },
  TT_ERR_VALIDATION: { status: 400, message: (d) => `request is invalid: ${d}` },
  /** a 4xx from the HTTP layer with no code of ours (e.g. a malformed URL) */
  TT_ERR_BAD_REQUEST: { status: 400, message: said },
  TT_ERR_CONTENT_TYPE: { status: 415, message: said },
  TT_ERR_BODY_TOO_LARGE: { status: 413, message: said },
  TT_ERR_NOT_FOUND: { status: 404, message: (d) => `no route ${d}; see docs/protocol.md` },
  // ---- protocol version (./version.ts)
  TT_ERR_CLIENT_TOO_OLD: { status: 426, message: said },
  TT_ERR_RELAY_TOO_OLD: { status: 400, message: said },
  // ---- updates
  TT_ERR_BAD_FRAME: { status: 400, message: (d) => `update frame is malformed: ${d}` },
  TT_ERR_BAD_UPDATE: { status: 400, message: (d) => `update payload is invalid: ${d}` },
  TT_ERR_PARAM_COUNT: { status: 400, message: said },
  TT_ERR_UPDATE_NORM: { status: 422, message: said },
  TT_ERR_EMPTY_UPDATE: { status: 422, message: said },
  TT_ERR_NOT_USEFUL: { status: 422, message: (d) => `update does not lower the loss on its own batch: ${d}` },
  // ---- a volunteer's device (server/routes/adapter-fit.ts)
  TT_ERR_ADAPTER_TOO_SMALL: { status: 422, message: said },
  // ---- things named in a request that do not exist
  TT_ERR_UNKNOWN_JOB: { status: 404, message: (d) => `no job with id "${d}"; list jobs with GET /api/jobs` },
  TT_ERR_UNKNOWN_TASK: { status: 404, message: (d) => `no task with id "${d}"; lease a task with POST /api/jobs/:jobId/tasks` },
  TT_ERR_UNKNOWN_VERSION: { status: 404, message: said },
  TT_ERR_UNKNOWN_SHARD: { status: 404, message: said },
  TT_ERR_UNKNOWN_VOLUNTEER: { status: 404, message: (d) => `no volunteer with id "${d}"; register with POST /api/volunteers` },
  TT_ERR_UNKNOWN_TOKEN: { status: 404, message: said },
  // ---- leases, rounds and job states
  TT_ERR_LEASE_INVALID: { status: 403, message: (d) => `lease is not valid: ${d}; send the lease the relay gave with this task` },
  TT_ERR_LEASE_EXPIRED: { status: 409, message: (d) => `lease of task ${d} has expired and the task was re-issued; drop it and lease a new task` },
  TT_ERR_LEASE_USED: { status: 409, message: (d) => `lease of task ${d} was already used for a different update; lease a new task` },
  TT_ERR_TOO_STALE: { status: 409, message: said },
  TT_ERR_JOB_NOT_RUNNING: { status: 409, message: said },
  TT_ERR_BAD_TRANSITION: { status: 409, message: said },
  /** a write lost a race with another (another relay, or a concurrent request): read again and retry */
  TT_ERR_CONFLICT: { status: 409, message: (d) => `${d}; read the current state and retry` },
  // ---- defences against untrusted volunteers (server/defence)
  TT_ERR_IDENTITY_REQUIRED: { status: 400, message: said },
  TT_ERR_POW: { status: 403, message: (d) => `proof of work refused: ${d}` },
  TT_ERR_SIGNATURE: { status: 403, message: (d) => `upload signature refused: ${d}` },
  TT_ERR_REQUEST_SIGNATURE: { status: 403, message: (d) => `task request refused: ${d}` },
  TT_ERR_REQUEST_TIME: { status: 401, message: (d) => `task request refused: ${d}` },
  TT_ERR_RATE_LIMITED: { status: 429, message: (d) => `too many requests: ${d}` },
  TT_ERR_VOLUNTEER_BANNED: { status: 403, message: said },
  // ---- peer-to-peer sharing between tabs (server/p2p)
  TT_ERR_UNKNOWN_PEER: { status: 409, message: (d) => `no tab "${d}" is connected to signalling; open the PeerJS connection (GET /api/p2p says where) before announcing` },
  TT_ERR_P2P_OFF: { status: 404, message: () => 'peer-to-peer sharing is off on this relay; fetch everything from the relay' },
  // ---- operators and researchers (server/ops)
  TT_ERR_UNAUTHENTICATED: { status: 401, message: said },
  TT_ERR_FORBIDDEN: { status: 403, message: said },
  TT_ERR_JOB_SPEC: { status: 400, message: said },
  TT_ERR_DATASET_TOO_LARGE: { status: 413, message: said },
  TT_ERR_PENDING_LIMIT: { status: 429, message: said },
  // ---- the relay's own failures
  TT_ERR_INTERNAL: { status: 500, message: () => 'the relay failed on its side; retry later' },
  /** a shared database (Postgres) that does not answer: not the client's mistake, retry after Retry-After */
  TT_ERR_DATABASE_UNAVAILABLE: { status: 503, message: (d) => `the relay's database does not answer (${d}); retry in a few seconds` },
} as const satisfies Record<`TT_ERR_${string}`, Entry>;

/** A code the relay sends in {"error": {code, message}}. */
export type ErrorCode = keyof typeof errorCatalogue;

/** Codes a client makes up itself, for failures that never reached (or never came back from) a relay. */
export const clientErrorCodes = [
  /** no relay answered after all retries */
  'TT_CLIENT_UNREACHABLE',
  /** an answer did not match the protocol's schema */
  'TT_CLIENT_BAD_ANSWER',
  /** a params download that is not a whole number of fp32 values */
  'TT_CLIENT_BAD_PARAMS',
  /** a refusal without our error body (a proxy's page), or with a code this client does not know (a newer relay) */
  'TT_CLIENT_UNKNOWN_ERROR',
  /** this device's adapter cannot hold the task's model at its batch size (checked before any download) */
  'TT_CLIENT_ADAPTER_TOO_SMALL',
] as const;
export type ClientErrorCode = (typeof clientErrorCodes)[number];

/** What a client may find in an error it caught: the relay's code or its own. */
export type AnyErrorCode = ErrorCode | ClientErrorCode;

export const isErrorCode = (code: unknown): code is ErrorCode =>
  typeof code === 'string' && Object.prototype.hasOwnProperty.call(errorCatalogue, code);

export const statusOf = (code: ErrorCode): number => errorCatalogue[code].status;
export const messageOf = (code: ErrorCode, detail = ''): string => errorCatalogue[code].message(detail);
