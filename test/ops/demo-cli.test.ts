// `tabtrain start --demo moby-dick` as a real child process (bin/tabtrain.js): the relay starts with the
// Moby-Dick job running instead of MNIST; an unknown demo is refused before anything starts, naming the flag.
import { spawn, spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { rmSync } from 'node:fs';
import { expect, test } from 'vitest';
import { tempDataDir } from '../helpers/relay.ts';

const freePort = () => new Promise<number>((resolve) => {
  const s = createServer().listen(0, '127.0.0.1', () => { const p = (s.address() as { port: number }).port; s.close(() => resolve(p)); });
});

test('--demo moby-dick starts the relay with the Moby-Dick job running, and no MNIST job', async () => {
  const port = await freePort(), dataDir = tempDataDir();
  const child = spawn(process.execPath, ['bin/tabtrain.js', 'start', '--demo', 'moby-dick', '--port', String(port), '--host', '127.0.0.1', '--data-dir', dataDir, '--quiet'],
    { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    await new Promise<void>((resolve, reject) => {
      let out = '';
      child.stdout!.on('data', (c) => { out += c; if (out.includes('listening on')) resolve(); });
      child.once('exit', (code) => reject(new Error(`relay exited with ${code} before listening: ${out}`)));
    });
    const { jobs } = await (await fetch(`http://127.0.0.1:${port}/api/jobs`)).json() as { jobs: { jobId: string; name: string; status: string }[] };
    expect(jobs).toEqual([{ jobId: 'moby-dick', name: 'Moby-Dick GPT', status: 'running', version: 0 }]);
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    rmSync(dataDir, { recursive: true, force: true });
  }
}, 300_000);

test('an unknown demo is refused, naming the flag and the choices', () => {
  const r = spawnSync(process.execPath, ['bin/tabtrain.js', 'start', '--demo', 'war-and-peace', '--data-dir', tempDataDir()], { encoding: 'utf8' });
  expect(r.status).not.toBe(0);
  expect(r.stderr).toContain('--demo must be one of mnist, moby-dick, got "war-and-peace"');
}, 120_000);
