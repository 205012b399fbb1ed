// Opening the shared store: a pool, the schema brought up to date, the store on top.
import { migratePostgres } from './migrate.ts';
import { openPostgresPool, type PostgresPoolOptions } from './pool.ts';
import { createPostgresStore, type PostgresStore } from './store.ts';

export type { PostgresStore } from './store.ts';

export async function openPostgresStore(url: string, o: PostgresPoolOptions = {}): Promise<PostgresStore> {
  const pool = openPostgresPool(url, o);
  try {
    await migratePostgres(pool);
  } catch (e) {
    await pool.end().catch(() => undefined);
    throw e;
  }
  return createPostgresStore(pool);
}
