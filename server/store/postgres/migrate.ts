// Applies ./schema.ts's migrations that a database lacks, in order, and records each in schema_migrations.
// All of it is one transaction under an advisory lock, so relays starting together apply each migration
// once, and a relay killed mid-way leaves the schema as it was (Postgres DDL is transactional).
import type pg from 'pg';
import { migrations as all, type Migration } from './schema.ts';

/** Advisory lock key of the migration runner (any constant unique to it). */
const MIGRATION_LOCK = 0x7461_6274; // "tabt"

export async function migratePostgres(pool: pg.Pool, migrations: Migration[] = all): Promise<{ applied: number[] }> {
  const c = await pool.connect();
  try {
    await c.query('BEGIN');
    await c.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
    await c.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())`);
    const done = new Set((await c.query<{ version: number }>('SELECT version FROM schema_migrations')).rows.map((r) => r.version));
    const newer = [...done].filter((v) => v > migrations.length);
    if (newer.length) {
      throw new Error(`the database has migration ${Math.max(...newer)}, this relay knows ${migrations.length}: run a relay of the newer release`);
    }
    const applied: number[] = [];
    for (const [i, m] of migrations.entries()) {
      const version = i + 1;
      if (done.has(version)) continue;
      await c.query(m.sql);
      await c.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [version, m.name]);
      applied.push(version);
    }
    await c.query('COMMIT');
    return { applied };
  } catch (e) {
    await c.query('ROLLBACK').catch(() => undefined);
    throw e;
  } finally {
    c.release();
  }
}
