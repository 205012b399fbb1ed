// kill -9 of the relay process during training, then a restart on the same data directory: the
// version, the outer momentum and every update the relay acknowledged are intact, and training goes on
// to the same accuracy. The relay runs as a real child process (bin/tabtrain.js start).
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createServer } from 'node:net';
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { rmSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { bestAccuracy, evals, startVolunteers, tempDataDir, waitFor } from '../helpers/relay.ts';

const freePort = () => new Promise<number>((resolve) => {
  const s = createServer().listen(0, '127.0.0.1', () => { const p = (s.address() as { port: number }).port; s.close(() => resolve(p)); });
});

function startChild(port: number, dataDir: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['bin/tabtrain.js', 'start', '--port', String(port), '--host', '127.0.0.1', '--data-dir', dataDir, '--sweep-ms', '100', '--quiet'],
    { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (c) => { out += c; if (out.includes('listening on')) resolve(child); });
    child.once('exit', (code) => reject(new Error(`relay exited with ${code} before listening: ${out}`)));
  });
}

type Snapshot = { version: number; momentumSha: string; updates: { taskId: string; payloadHash: string }[] };
function snapshot(dataDir: string, atVersion?: number): Snapshot {
  const db = new Database(join(dataDir, 'tabtrain.sqlite'), { readonly: true, fileMustExist: true });
  try {
    const { version } = db.prepare('SELECT version FROM jobs WHERE job_id = ?').get('mnist-mlp') as { version: number };
    const row = db.prepare('SELECT momentum FROM versions WHERE job_id = ? AND version = ?').get('mnist-mlp', atVersion ?? version) as { momentum: Buffer };
    const updates = db.prepare('SELECT task_id AS taskId, payload_hash AS payloadHash FROM updates WHERE job_id = ? ORDER BY task_id').all('mnist-mlp') as Snapshot['updates'];
    return { version, momentumSha: createHash('sha256').update(row.momentum).digest('hex'), updates };
  } finally {
    db.close();
  }
}

describe('crash safety', () => {
  const dataDir = tempDataDir();
  let child: ChildProcess | undefined;
  afterAll(() => {
    child?.kill('SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('keeps version, momentum and every acknowledged update across kill -9, and training reaches 90 % after restart', async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    child = await startChild(port, dataDir);
    const acked = new Set<string>();
    const vs = startVolunteers(url, 4, { onEvent: (_i, e) => { if (e.type === 'uploaded' && e.ack.accepted) acked.add(e.taskId); } });
    // 1. train until a few versions exist, then kill -9 the relay while the volunteers keep going
    const before = await waitFor(() => evals(url), (es) => es.length >= 3);
    const seenVersion = Math.max(...before.map((e) => e.version));
    const pre = snapshot(dataDir, seenVersion);
    child.kill('SIGKILL');
    await new Promise((r) => child!.once('exit', r));
    const ackedBeforeKill = [...acked];
    expect(ackedBeforeKill.length).toBeGreaterThanOrEqual(8);

    // 2. what the relay acknowledged or committed is on disk after the crash
    const post = snapshot(dataDir, seenVersion);
    expect(post.version).toBeGreaterThanOrEqual(seenVersion);
    expect(post.momentumSha).toBe(pre.momentumSha);
    const stored = new Map(post.updates.map((u) => [u.taskId, u.payloadHash]));
    for (const taskId of ackedBeforeKill) expect(stored.has(taskId)).toBe(true);
    for (const u of pre.updates) expect(stored.get(u.taskId)).toBe(u.payloadHash);

    // 3. restart on the same data dir and port; the volunteers' retries find it and training goes on
    child = await startChild(port, dataDir);
    const after = snapshot(dataDir, seenVersion);
    expect(after.version).toBeGreaterThanOrEqual(post.version);
    expect(after.momentumSha).toBe(pre.momentumSha);
    const reached = await waitFor(() => evals(url), (es) => bestAccuracy(es) >= 0.9);
    await vs.stop();
    expect(bestAccuracy(reached)).toBeGreaterThanOrEqual(0.9);
    expect(Math.max(...reached.map((e) => e.version))).toBeGreaterThan(post.version);
    const final = snapshot(dataDir);
    const finalIds = new Set(final.updates.map((u) => u.taskId));
    for (const taskId of ackedBeforeKill) expect(finalIds.has(taskId)).toBe(true);
    expect(vs.events.filter((e) => e.type === 'error')).toEqual([]);
  }, 600_000); // two relay process starts and a training run: the longest test here
});
