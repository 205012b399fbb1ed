// Shared route pieces: the error body schema every 4xx/5xx uses, and the fastify type augmentation.
import type Database from 'better-sqlite3';
import type { FastifyInstance } from 'fastify';
import { RelaySendsError } from '../../shared/protocol/messages.ts';
import type { Metrics } from '../metrics.ts';
import type { Scheduler } from '../scheduler/scheduler.ts';
import type { SqliteStore } from '../store/sqlite.ts';
import type { Stores } from '../store/types.ts';
import type { DatabaseProbe } from '../store/database.ts';

declare module 'fastify' {
  interface FastifyInstance {
    /** everything the relay stores, asynchronous (server/store/types.ts): what relay code reads and writes through */
    stores: Stores;
    /** the database behind the stores, for /healthz */
    database: DatabaseProbe;
    /** the embedded store's synchronous core and its SQLite handle: for tests and offline tools only;
     * relay code goes through `stores` (its events and transactions) */
    store: SqliteStore;
    db: Database.Database;
    scheduler: Scheduler;
    metrics: Metrics;
    dataDir: string;
    /** the relay's disk use by part (server/store/disk-use.ts), measured at most every few seconds */
    diskUse: () => Promise<import('../store/disk-use.ts').DiskUse>;
    /** the relay's clock (RelayOptions.now): routes read time from it, never from Date.now */
    now: () => number;
  }
  interface FastifyContextConfig {
    /** the body kind a route takes; anything else is refused with 415 before parsing */
    body?: 'json' | 'binary';
    /** the route needs an API token, checked before its body is read (server/ops/auth.ts needsToken) */
    token?: boolean;
    /** the route checks the client's protocol version (server/routes/protocol.ts): 426 when too old */
    protocol?: boolean;
  }
}

export const errorResponses = {
  400: RelaySendsError, 403: RelaySendsError, 404: RelaySendsError, 409: RelaySendsError, 413: RelaySendsError, 415: RelaySendsError,
  422: RelaySendsError, 426: RelaySendsError, 429: RelaySendsError,
};

/** For a volunteer-facing route plugin: counts every refusal by reason (its error code) for /metrics and
 * the dashboard, and turns a rate-limit refusal's wait into a Retry-After header. */
export function countRefusals(app: FastifyInstance): void {
  app.addHook('onError', async (_req, reply, err: Error & { code?: string; validation?: unknown; retryAfterSeconds?: number }) => {
    const reason = err.validation ? 'TT_ERR_VALIDATION' : err.code?.startsWith('TT_ERR_') ? err.code : err.code?.startsWith('FST_') ? 'TT_ERR_BAD_REQUEST' : 'other';
    app.scheduler.guard.refused(reason);
    if (err.retryAfterSeconds !== undefined) reply.header('retry-after', String(err.retryAfterSeconds));
  });
}
