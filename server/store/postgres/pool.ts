// A pg connection pool as the relay uses it: 64-bit integers and sums read as JS numbers (timestamps in ms
// and counters stay far below 2^53), a bounded wait for a connection so a request fails fast when the
// database is down, and errors of idle connections logged instead of crashing the process.
import pg from 'pg';

const asNumber = (v: string): number => Number(v);
const INT8 = 20, NUMERIC = 1700;

/** Type parsers for this pool only: the process-wide pg.types stay untouched. */
const types = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (oid === INT8 || oid === NUMERIC) return asNumber;
    return pg.types.getTypeParser(oid, format);
  },
} as pg.CustomTypesConfig;

export type PostgresPoolOptions = {
  /** connections this relay may hold (default 10) */
  max?: number;
  /** how long a query waits for a connection before it fails (default 2000 ms) */
  connectionTimeoutMs?: number;
  warn?: (fields: Record<string, unknown>, message: string) => void;
};

export function openPostgresPool(url: string, o: PostgresPoolOptions = {}): pg.Pool {
  const pool = new pg.Pool({
    connectionString: url, types, max: o.max ?? 10,
    connectionTimeoutMillis: o.connectionTimeoutMs ?? 2000,
    idleTimeoutMillis: 30_000,
    // a relay whose database went away notices at the next query, not after a TCP timeout of minutes
    keepAlive: true,
    application_name: 'tabtrain-relay',
  });
  // an idle client that loses its server emits 'error' on the pool; unhandled, it would end the process
  pool.on('error', (err) => o.warn?.({ err }, 'an idle database connection failed; it is replaced on next use'));
  return pool;
}
