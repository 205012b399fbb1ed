// /healthz says which database the relay runs on and whether it answers; `start` refuses a database URL
// that is not Postgres before anything opens.
import { execFile } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { checkDatabaseUrl, databaseUrlFrom, redactUrl } from '../../server/store/database.ts';
import { startRelay } from '../helpers/relay.ts';

describe('health and database selection', () => {
  it('reports the embedded SQLite database as reachable', async () => {
    const relay = await startRelay({ defaultJob: false });
    try {
      const r = await fetch(`${relay.url}/healthz`);
      expect(r.status).toBe(200);
      const body = await r.json() as { ok: boolean; database: { kind: string; reachable: boolean } };
      expect(body.ok).toBe(true);
      expect(body.database).toMatchObject({ kind: 'sqlite', reachable: true });
    } finally {
      await relay.stop();
    }
  });

  it('takes the flag over the environment, and only postgres URLs', () => {
    expect(databaseUrlFrom(undefined, {})).toBeUndefined();
    expect(databaseUrlFrom(undefined, { TABTRAIN_DATABASE_URL: '' })).toBeUndefined();
    expect(databaseUrlFrom(undefined, { TABTRAIN_DATABASE_URL: 'postgres://a@h/db' })).toBe('postgres://a@h/db');
    expect(databaseUrlFrom('postgres://b@h/db', { TABTRAIN_DATABASE_URL: 'postgres://a@h/db' })).toBe('postgres://b@h/db');
    expect(checkDatabaseUrl('postgresql://u@h:5432/d')).toBe('postgresql://u@h:5432/d');
    expect(() => checkDatabaseUrl('mysql://u@h/d')).toThrow(/must start with postgres:\/\//);
    expect(() => checkDatabaseUrl('not a url')).toThrow(/not a URL/);
    expect(redactUrl('postgres://u:secret@h/d')).not.toContain('secret');
  });

  it('`tabtrain start` refuses a database URL that is not Postgres, naming the flag', async () => {
    const r = await new Promise<{ code: number; stderr: string }>((resolve) => {
      execFile(process.execPath, ['bin/tabtrain.js', 'start', '--port', '0', '--database-url', 'mysql://u@h/d'], (err, _out, stderr) =>
        resolve({ code: err ? Number(err.code) : 0, stderr }));
    });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/--database-url .*postgres:\/\//);
  });
});
