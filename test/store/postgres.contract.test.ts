// The store contract (./contract.ts) on the shared Postgres store: one database for this file, emptied
// before each test (faster than a database per test, and the schema is migrated once).
import pg from 'pg';
import { openPostgresStores } from '../../server/store/postgres/index.ts';
import { postgresPerFile } from '../helpers/postgres.ts';
import { describeStoreContract } from './contract.ts';

const pgdb = postgresPerFile();

async function emptyAllTables(url: string): Promise<void> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const { rows } = await c.query<{ t: string }>(`SELECT quote_ident(table_name) AS t FROM information_schema.tables
      WHERE table_schema = 'public' AND table_type = 'BASE TABLE' AND table_name != 'schema_migrations'`);
    if (rows.length) await c.query(`TRUNCATE ${rows.map((r) => r.t).join(', ')} RESTART IDENTITY`);
  } finally {
    await c.end();
  }
}

describeStoreContract('Postgres', async () => {
  await emptyAllTables(pgdb.url); // nothing on the first run: the schema is made by the open below
  const stores = await openPostgresStores(pgdb.url);
  return { stores, close: () => stores.close() };
});
