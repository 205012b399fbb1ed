// Group commit (server/store/group-commit.ts) holds an upload's answer until the transaction it shares
// with others has committed. Killed with SIGKILL in the middle of a stream of batched accepts, a process
// leaves every update it had acknowledged stored, its task accepted, on SQLite and on Postgres.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openSqliteStores } from '../../server/store/async.ts';
import { openPostgresStores } from '../../server/store/postgres/index.ts';
import type { Stores } from '../../server/store/types.ts';
import { postgresPerFile } from '../helpers/postgres.ts';

const pgdb = postgresPerFile();
const COUNT = 3000;

/** Runs the accepting child until it acknowledged `killAfter` updates, then kills it; the ids it acknowledged. */
async function acceptUntilKilled(where: string, killAfter: number): Promise<string[]> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/helpers/accept-until-killed.ts', where, String(COUNT)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const acked: string[] = [];
  let buffered = '';
  let done = false;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.stdout!.on('data', (c: Buffer) => {
    buffered += c.toString();
    const lines = buffered.split('\n');
    buffered = lines.pop()!;
    for (const line of lines) {
      if (line.startsWith('ACK ')) acked.push(line.slice(4));
      if (line === 'DONE') done = true;
    }
    if (acked.length >= killAfter && child.exitCode === null) child.kill('SIGKILL');
  });
  await exited;
  expect(done).toBe(false); // killed mid-way, not after the last
  return acked;
}

async function check(stores: Stores, acked: string[]): Promise<void> {
  const stored = new Set((await stores.relay.listUpdates('k')).map((u) => u.taskId));
  expect(acked.length).toBeGreaterThanOrEqual(200);
  expect(acked.filter((id) => !stored.has(id))).toEqual([]);
  for (const id of acked.slice(-50)) expect((await stores.relay.getTask(id))?.state).toBe('accepted');
  // nothing half-done: every stored update's task is accepted, and no accepted task lacks its update
  const accepted = (await stores.relay.listUpdates('k')).length;
  expect(await stores.relay.countPendingUpdates('k')).toBe(accepted);
  expect(stored.size).toBeLessThan(COUNT);
}

describe('group commit under SIGKILL', () => {
  it('SQLite: every acknowledged update survives', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tt-gc-kill-'));
    try {
      const file = join(dir, 'db.sqlite');
      const acked = await acceptUntilKilled(file, 200);
      const stores = openSqliteStores(file, { checkpointWorker: false });
      try { await check(stores, acked); } finally { await stores.close(); }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('Postgres: every acknowledged update survives', async () => {
    const acked = await acceptUntilKilled(pgdb.url, 200);
    const stores = await openPostgresStores(pgdb.url);
    try { await check(stores, acked); } finally { await stores.close(); }
  });
});
