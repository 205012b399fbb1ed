// /healthz says which database the relay runs on and whether it answers; `start` refuses a database URL
// that is not Postgres before anything opens.
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { postgresPerFile } from '../helpers/postgres.ts';
import { checkDatabaseUrl, databaseUrlFrom, redactUrl } from '../../server/store/database.ts';
import { startRelay } from '../helpers/relay.ts';

const pgdb = postgresPerFile();

describe('health and database selection', () => {
  it('`tabtrain start` with TABTRAIN_DATABASE_URL runs on Postgres and says so on /healthz', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tabtrain-cli-pg-'));
    const child = spawn(process.execPath, ['bin/tabtrain.js', 'start', '--port', '0', '--host', '127.0.0.1', '--data-dir', dir, '--quiet'],
      { env: { ...process.env, TABTRAIN_DATABASE_URL: pgdb.url }, stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let out = '';
        child.stdout.on('data', (b: Buffer) => { out += b; const m = /listening on (\S+)/.exec(out); if (m) resolve(m[1]); });
        child.once('exit', (code) => reject(new Error(`relay exited with ${code} before listening`)));
      });
      const body = await (await fetch(`${url}/healthz`)).json() as { ok: boolean; database: { kind: string; reachable: boolean }; jobs: number };
      expect(body).toMatchObject({ ok: true, database: { kind: 'postgres', reachable: true }, jobs: 1 });
    } finally {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    }
  });

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
