// Everything the relay stores, on one Postgres database that several relays share (../types.ts Stores):
// the relay's tables, the operator plugin's and the defence's, transactions spanning them, and events.
// Besides the interface: `remote` hears other relays' changes (./notify.ts), `leaseSecret` is the one
// secret every relay signs leases with (a lease from one relay is good on any), `ping` is for /healthz.
import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { addListener, type StoreEventName, type Stores } from '../types.ts';
import { StoreUsageError } from '../errors.ts';
import { Ctx, type Shared, type TxState } from './context.ts';
import { createDefenceStore } from './defence.ts';
import { migratePostgres } from './migrate.ts';
import { listenForEvents, type EventListener } from './notify.ts';
import { createOpsStore } from './ops.ts';
import { openPostgresPool, type PostgresPoolOptions } from './pool.ts';
import { createRelayStore, type RelayStoreOptions } from './relay.ts';
import { CHUNK_BYTES } from './chunks.ts';

export type PostgresStores = Stores & {
  readonly pool: pg.Pool;
  /** other relays' changes (and `resync` after the listener reconnected) */
  readonly remote: EventListener;
  /** the lease-signing secret, made by the first relay on this database and read by every other */
  leaseSecret(): Promise<Buffer>;
  ping(): Promise<void>;
  /** the shared database's size on its server (the relay's disk use shows it beside its own files) */
  databaseBytes(): Promise<number>;
};

type Warn = (fields: Record<string, unknown>, message: string) => void;

function handle(shared: Shared, url: string, tx?: TxState, o: RelayStoreOptions = {}): Stores {
  const c = new Ctx(shared, tx);
  const on = ((name: StoreEventName, l: never) => addListener(shared.after, name, l)) as Stores['on'];
  const onCommitting = ((name: StoreEventName, l: never) => addListener(shared.committing, name, l)) as Stores['onCommitting'];
  return {
    relay: createRelayStore(c, url, o), ops: createOpsStore(c), defence: createDefenceStore(c),
    on, onCommitting,
    transaction: (fn) => c.transaction(fn),
    close: async () => { throw new StoreUsageError('a transaction handle cannot close the store'); },
  };
}

/** Opens a pool on `url`, brings the schema up to date (./migrate.ts) and starts listening for other relays. */
export async function openPostgresStores(url: string, o: PostgresPoolOptions & { warn?: Warn; checkpointChunkBytes?: number; groupCommit?: RelayStoreOptions['groupCommit'] } = {}): Promise<PostgresStores> {
  const pool = openPostgresPool(url, o);
  try {
    await migratePostgres(pool);
  } catch (e) {
    await pool.end().catch(() => undefined);
    throw e;
  }
  const warn: Warn = o.warn ?? (() => undefined);
  const origin = randomBytes(8).toString('hex');
  const shared: Shared = { pool, origin, after: new Map(), committing: new Map(), warn, handleFor: (tx) => handle(shared, url, tx), open: new Set(), closed: false,
    chunkBytes: o.checkpointChunkBytes ?? CHUNK_BYTES };
  const drains: (() => Promise<void>)[] = [];
  let stats: (() => { batches: number; items: number }) | undefined;
  const root = handle(shared, url, undefined, { groupCommit: o.groupCommit, onBatcher: (b) => { drains.push(b.drain); stats = b.stats; } });
  const remote = listenForEvents(url, { origin, warn });
  return {
    ...root,
    pool, remote,
    groupCommitStats: () => stats?.() ?? { batches: 0, items: 0 },
    databaseBytes: async () => Number((await pool.query<{ n: string }>('SELECT pg_database_size(current_database()) AS n')).rows[0].n),
    async leaseSecret() {
      await pool.query('INSERT INTO relay_meta VALUES ($1, $2) ON CONFLICT (key) DO NOTHING', ['lease_secret', randomBytes(32)]);
      return (await pool.query<{ value: Buffer }>('SELECT value FROM relay_meta WHERE key = $1', ['lease_secret'])).rows[0].value;
    },
    ping: async () => { await pool.query('SELECT 1'); },
    async close() {
      if (shared.closed) return;
      await Promise.all(drains.map((d) => d()));
      await Promise.allSettled(shared.open);
      shared.closed = true;
      await remote.close();
      await pool.end();
    },
  };
}
