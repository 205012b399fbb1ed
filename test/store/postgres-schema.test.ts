// The Postgres schema against a real server: migrations apply once (also when several relays start
// together), the tables and columns are those SQLite has, and binary payloads round-trip as bytea.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openSqliteStores } from '../../server/store/async.ts';
import { openPostgresPool } from '../../server/store/postgres/pool.ts';
import { isDatabaseUnavailable } from '../../server/store/unavailable.ts';
import { migratePostgres } from '../../server/store/postgres/migrate.ts';
import { migrations } from '../../server/store/postgres/schema.ts';
import { postgresPerFile } from '../helpers/postgres.ts';

const pgdb = postgresPerFile();
const pools: ReturnType<typeof openPostgresPool>[] = [];
const pool = () => { const p = openPostgresPool(pgdb.url); pools.push(p); return p; };
afterAll(async () => { await Promise.all(pools.map((p) => p.end())); });

/** Every table and column the SQLite file has once the relay, its operator plugin and its defences opened it. */
async function sqliteColumns(): Promise<Map<string, Set<string>>> {
  const dir = mkdtempSync(join(tmpdir(), 'tabtrain-schema-'));
  const stores = openSqliteStores(join(dir, 'tabtrain.sqlite'), { checkpointWorker: false });
  const store = stores.core;
  try {
    const tables = store.db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'").all() as { name: string }[];
    return new Map(tables.map(({ name }) => [name,
      new Set((store.db.prepare(`PRAGMA table_info(${name})`).all() as { name: string }[]).map((c) => c.name))]));
  } finally {
    await stores.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('Postgres schema', () => {
  it('applies every migration once, even with three relays starting at the same moment', async () => {
    const results = await Promise.all([pool(), pool(), pool()].map((p) => migratePostgres(p)));
    const applied = results.flatMap((r) => r.applied).sort((a, b) => a - b);
    expect(applied).toEqual(migrations.map((_, i) => i + 1));
    expect((await migratePostgres(pool())).applied).toEqual([]);
    const { rows } = await pool().query('SELECT version, name FROM schema_migrations ORDER BY version');
    expect(rows.map((r) => r.name)).toEqual(migrations.map((m) => m.name));
  });

  it('refuses a database migrated by a newer release', async () => {
    await expect(migratePostgres(pool(), migrations.slice(0, 1))).rejects.toThrow(/newer release/);
  });

  it('has every table and column SQLite has, with binary payloads as bytea', async () => {
    const want = await sqliteColumns();
    // the SQLite-only bookkeeping of the defence migrations; Postgres records them in schema_migrations
    want.delete('defence_meta');
    const { rows } = await pool().query<{ table_name: string; column_name: string; data_type: string }>(
      "SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_schema = 'public'");
    const have = new Map<string, Map<string, string>>();
    for (const r of rows) {
      if (!have.has(r.table_name)) have.set(r.table_name, new Map());
      have.get(r.table_name)!.set(r.column_name, r.data_type);
    }
    expect(want.size).toBeGreaterThan(10);
    for (const [table, cols] of want) {
      expect(have.has(table), `table ${table}`).toBe(true);
      for (const c of cols) expect(have.get(table)!.has(c), `${table}.${c}`).toBe(true);
    }
    for (const [t, c] of [['versions', 'params'], ['versions', 'momentum'], ['versions', 'delta'], ['versions', 'residual'],
      ['updates', 'payload'], ['ops_shards', 'bytes'], ['defence_replicas', 'payload']]) {
      expect(have.get(t)!.get(c), `${t}.${c}`).toBe('bytea');
    }
  });

  it('stores a checkpoint as bytes and reads it back bit for bit, with ms times and counts as numbers', async () => {
    const p = pool();
    const params = Float32Array.from({ length: 1000 }, (_, i) => Math.sin(i) * 1e-3);
    const bytes = Buffer.from(params.buffer);
    const now = Date.now();
    await p.query('INSERT INTO versions (job_id, version, hash, params, momentum, created_at) VALUES ($1, 0, $2, $3, $4, $5)',
      ['j', 'h', bytes, Buffer.alloc(0), now]);
    const { rows } = await p.query<{ params: Buffer; created_at: number; n: number }>(
      'SELECT params, created_at, (SELECT COUNT(*) FROM versions) AS n FROM versions WHERE job_id = $1', ['j']);
    expect(Buffer.compare(rows[0].params, bytes)).toBe(0);
    expect(rows[0].created_at).toBe(now);
    expect(rows[0].n).toBe(1);
  });

  it('tells a database that is not there from a bad query', async () => {
    const down = openPostgresPool('postgres://postgres@127.0.0.1:1/postgres', { connectionTimeoutMs: 500 });
    pools.push(down);
    const err = await down.query('SELECT 1').catch((e: unknown) => e);
    expect(isDatabaseUnavailable(err)).toBe(true);
    const bad = await pool().query('SELECT * FROM no_such_table').catch((e: unknown) => e);
    expect(isDatabaseUnavailable(bad)).toBe(false);
  });
});
