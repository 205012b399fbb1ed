// The one error catalogue (shared/protocol/errors.ts): every code the relay's sources throw is in it, the
// statuses clients rely on do not move, and docs/protocol.md lists every code with its status.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { errorCatalogue, isErrorCode, statusOf, type ErrorCode } from '../../shared/protocol/errors.ts';
import { RelayError } from '../../server/errors.ts';
import { OpsError } from '../../server/ops/errors.ts';

const root = join(import.meta.dirname, '../..');
const sources = (dir: string): string[] => readdirSync(dir).flatMap((f) => {
  const p = join(dir, f);
  return statSync(p).isDirectory() ? sources(p) : p.endsWith('.ts') ? [p] : [];
});

describe('one error catalogue', () => {
  it('holds every TT_ERR_ code written anywhere in the relay, the shared code and the pages', () => {
    const used = new Set<string>();
    for (const dir of ['server', 'shared', 'web']) {
      for (const file of sources(join(root, dir))) for (const m of readFileSync(file, 'utf8').matchAll(/TT_ERR_[A-Z0-9_]+/g)) used.add(m[0]);
    }
    expect(used.size).toBeGreaterThan(30);
    expect([...used].filter((c) => !isErrorCode(c))).toEqual([]);
  });

  it('keeps the statuses clients and tests rely on', () => {
    const expected: Record<ErrorCode, number> = {
      TT_ERR_BAD_JSON: 400, TT_ERR_VALIDATION: 400, TT_ERR_BAD_REQUEST: 400, TT_ERR_CONTENT_TYPE: 415, TT_ERR_BODY_TOO_LARGE: 413,
      TT_ERR_NOT_FOUND: 404, TT_ERR_CLIENT_TOO_OLD: 426, TT_ERR_RELAY_TOO_OLD: 400, TT_ERR_BAD_FRAME: 400, TT_ERR_BAD_UPDATE: 400,
      TT_ERR_PARAM_COUNT: 400, TT_ERR_UPDATE_NORM: 422, TT_ERR_EMPTY_UPDATE: 422, TT_ERR_NOT_USEFUL: 422, TT_ERR_ADAPTER_TOO_SMALL: 422, TT_ERR_UNKNOWN_JOB: 404,
      TT_ERR_UNKNOWN_TASK: 404, TT_ERR_UNKNOWN_VERSION: 404, TT_ERR_UNKNOWN_SHARD: 404, TT_ERR_UNKNOWN_VOLUNTEER: 404,
      TT_ERR_UNKNOWN_TOKEN: 404, TT_ERR_LEASE_INVALID: 403, TT_ERR_LEASE_EXPIRED: 409, TT_ERR_LEASE_USED: 409, TT_ERR_TOO_STALE: 409,
      TT_ERR_JOB_NOT_RUNNING: 409, TT_ERR_BAD_TRANSITION: 409, TT_ERR_CONFLICT: 409, TT_ERR_IDENTITY_REQUIRED: 400, TT_ERR_POW: 403, TT_ERR_SIGNATURE: 403,
      TT_ERR_REQUEST_SIGNATURE: 403, TT_ERR_REQUEST_TIME: 401, TT_ERR_RATE_LIMITED: 429, TT_ERR_VOLUNTEER_BANNED: 403,
      TT_ERR_UNKNOWN_PEER: 409, TT_ERR_P2P_OFF: 404,
      TT_ERR_UNAUTHENTICATED: 401, TT_ERR_FORBIDDEN: 403, TT_ERR_JOB_SPEC: 400, TT_ERR_DATASET_TOO_LARGE: 413, TT_ERR_PENDING_LIMIT: 429,
      TT_ERR_INTERNAL: 500, TT_ERR_DATABASE_UNAVAILABLE: 503,
    };
    expect(Object.fromEntries(Object.entries(errorCatalogue).map(([c, e]) => [c, e.status]))).toEqual(expected);
  });

  it('gives the relay\'s and the operator plugin\'s errors the same status for a code', () => {
    for (const code of ['TT_ERR_UNKNOWN_JOB', 'TT_ERR_UNKNOWN_VERSION', 'TT_ERR_RATE_LIMITED', 'TT_ERR_BAD_TRANSITION'] as const) {
      expect(new OpsError(code, 'x').statusCode).toBe(statusOf(code));
      expect(new RelayError(code, 'x').statusCode).toBe(statusOf(code));
    }
    expect(new RelayError('TT_ERR_UNKNOWN_JOB', 'nope').message).toBe('no job with id "nope"; list jobs with GET /api/jobs');
  });

  it('is listed in docs/protocol.md, every code with its status', () => {
    const doc = readFileSync(join(root, 'docs/protocol.md'), 'utf8');
    const missing = Object.entries(errorCatalogue).filter(([code, e]) => !new RegExp(`\\| ${e.status} \`${code}\` \\|`).test(doc)).map(([c]) => c);
    expect(missing).toEqual([]);
  });
});
