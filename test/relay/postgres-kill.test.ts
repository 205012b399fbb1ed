// kill -9 of a relay in the middle of closing a round, on a shared Postgres: the killed relay's
// transaction (version bumped, checkpoint written, job row locked) dies with its connection, the other
// relay, which was waiting on that lock, closes the round itself from the stored updates, and no
// acknowledged update is lost or half applied.
import { spawn } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { encodeUpdate } from '../../shared/codec/index.ts';
import { paramCount } from '../../shared/models/config.ts';
import { defaultJobSpec } from '../../server/default-job.ts';
import { startRelay, waitFor, type TestRelay } from '../helpers/relay.ts';
import { postgresPerFile } from '../helpers/postgres.ts';

const pgdb = postgresPerFile();
let relay: TestRelay | undefined;
afterAll(async () => { await relay?.stop(); });

describe('a relay killed mid-close', () => {
  it('leaves nothing half-done, and another relay closes the round with every acknowledged update', async () => {
    relay = await startRelay({ databaseUrl: pgdb.url, defaultJob: false });
    const spec = defaultJobSpec({ updatesPerRound: 3 });
    await relay.app.scheduler.createJob('k', spec, 'running');

    const child = spawn(process.execPath, ['--import', 'tsx', 'test/helpers/hold-round-close.ts', pgdb.url, 'k'], { stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = new Promise<NodeJS.Signals | null>((r) => child.once('exit', (_code, signal) => r(signal)));
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (b: Buffer) => { if (b.toString().includes('holding')) resolve(); });
      child.once('exit', () => reject(new Error('the round-closing child ended before holding its transaction')));
    });

    // the round fills while the killed-to-be relay holds the job's row; this relay's close waits on it
    const n = paramCount(spec.model);
    for (let i = 0; i < 3; i++) {
      const taskId = `k-t${i}`;
      await relay.app.stores.relay.insertTask({ taskId, jobId: 'k', volunteerId: `v${i}`, baseVersion: 0, shard: i, seed: i, state: 'issued',
        issuedAt: Date.now(), expiresAt: Date.now() + 60_000, reissueOf: null, payloadHash: null, ack: null });
      await relay.app.stores.relay.acceptUpdate({ taskId, jobId: 'k', volunteerId: `v${i}`, baseVersion: 0, round: 0, weight: 1,
        payload: encodeUpdate(Float32Array.from({ length: n }, (_, k) => Math.cos(k * (i + 1)) * 1e-3), spec.hyperparameters.compression),
        payloadHash: `p${i}`, losses: [1], samples: 32, computeMs: 1, acceptedAt: Date.now(), norm: 0.01 }, '{}');
    }
    const closing = relay.app.scheduler.closeRound('k', false);
    await new Promise((r) => setTimeout(r, 300));
    expect((await relay.app.stores.relay.getJob('k'))!.version).toBe(0); // nothing of the held close is visible

    child.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');
    await closing;
    const job = await waitFor(() => relay!.app.stores.relay.getJob('k'), (j) => j!.version === 1);
    expect(job!.version).toBe(1);
    expect(await relay.app.stores.relay.listVersions('k')).toEqual([0, 1]);
    expect(await relay.app.stores.relay.versionHash('k', 1)).not.toBe('from-the-killed-relay');
    expect((await relay.app.stores.relay.appliedUpdates('k', 1)).map((u) => u.taskId).sort()).toEqual(['k-t0', 'k-t1', 'k-t2']);
    expect(await relay.app.stores.relay.countPendingUpdates('k')).toBe(0);
  });
});
