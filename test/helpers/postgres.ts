// A fresh Postgres database per test file: created with a unique name on the server that
// TABTRAIN_TEST_DATABASE_URL names (default: the local postgres user over TCP), dropped after, so test
// files running in parallel never see each other's rows.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll } from 'vitest';

export const adminUrl = (): string => process.env.TABTRAIN_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export type TestDatabase = { name: string; url: string; drop(): Promise<void> };

/** The admin URL with its database name replaced. */
export function urlFor(database: string): string {
  const u = new URL(adminUrl());
  u.pathname = `/${database}`;
  return u.toString();
}

async function admin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: adminUrl() });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

export async function createTestDatabase(): Promise<TestDatabase> {
  const name = `tabtrain_test_${process.pid}_${randomBytes(4).toString('hex')}`;
  await admin((c) => c.query(`CREATE DATABASE ${name}`));
  return {
    name, url: urlFor(name),
    // FORCE: a relay a failed test left open must not keep the database alive
    drop: () => admin((c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)).then(() => undefined),
  };
}

/** In a test file: a database created before its tests and dropped after them. */
export function postgresPerFile(): { readonly url: string; readonly name: string } {
  let db: TestDatabase | undefined;
  beforeAll(async () => { db = await createTestDatabase(); });
  afterAll(async () => { await db?.drop(); });
  return {
    get url() { if (!db) throw new Error('the test database is created in beforeAll'); return db.url; },
    get name() { if (!db) throw new Error('the test database is created in beforeAll'); return db.name; },
  };
}
