// The operator plugin's tables on a relay's SQLite file, for the offline CLI (`tabtrain token create`
// against a data directory): their SQL and migrations are server/store/sqlite-ops.ts, and the running
// relay reads and writes them through app.stores.ops (server/store/ops-types.ts).
import type Database from 'better-sqlite3';
import { migrateOpsTables } from '../store/sqlite-ops.ts';

export type { OpsJob } from '../store/ops-types.ts';

export const migrateOps = (db: Database.Database): void => migrateOpsTables(db);
