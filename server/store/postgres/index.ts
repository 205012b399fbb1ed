// The shared Postgres store: see ./stores.ts.
export { openPostgresStores, type PostgresStores } from './stores.ts';
