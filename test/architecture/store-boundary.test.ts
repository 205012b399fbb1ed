// Every read and write of the relay's state goes through server/store (its interfaces, its SQL): a
// query written anywhere else would bypass the store's transactions and events, and a second store
// (Postgres) would never see it.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..');
const files = (dir: string): string[] => readdirSync(dir).flatMap((n) => {
  const p = join(dir, n);
  return statSync(p).isDirectory() ? files(p) : p.endsWith('.ts') ? [p] : [];
});

describe('store boundary', () => {
  it('has no SQL and no prepared statements in server/ outside server/store/', () => {
    const sql = /\b(SELECT\s+[\w*(]|INSERT\s+(OR\s+\w+\s+)?INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|CREATE\s+(TABLE|INDEX))|\.prepare\(|\bdb\.exec\(/;
    const offenders = files(join(root, 'server'))
      .filter((f) => !relative(root, f).startsWith(join('server', 'store')))
      .filter((f) => sql.test(readFileSync(f, 'utf8')))
      .map((f) => relative(root, f));
    expect(offenders).toEqual([]);
  });
});
