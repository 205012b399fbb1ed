// The dashboard's running totals on a real SQLite store: read incrementally, shared by concurrent readers,
// windowed by time, credit kept through a rollback; and the snapshot's thinned curves.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { defaultJobSpec } from '../../server/default-job.ts';
import { createTallies } from '../../server/ops/tallies.ts';
import { openSqliteStore, type SqliteStore } from '../../server/store/sqlite.ts';
import { sqliteStores } from '../../server/store/async.ts';
import { CURVE_POINTS } from '../../server/ops/curve.ts';
import { startOpsRelay, type OpsRelay } from './helpers.ts';

let dir: string, store: SqliteStore | undefined, relay: OpsRelay | undefined;
afterEach(async () => {
  store?.close(); store = undefined;
  await relay?.stop(); relay = undefined;
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function accept(s: SqliteStore, taskId: string, volunteerId: string, at: number, samples: number, bytes = 100): void {
  s.insertTask({ taskId, jobId: 'j', volunteerId, baseVersion: 0, shard: 0, seed: 1, state: 'issued', issuedAt: at, expiresAt: at + 60_000, reissueOf: null, payloadHash: null, ack: null });
  s.acceptUpdate({ taskId, jobId: 'j', volunteerId, baseVersion: 0, round: 0, weight: 1, payload: new Uint8Array(bytes), payloadHash: 'x', losses: [1], samples, computeMs: 1, acceptedAt: at, norm: 1 }, '{}');
}

describe('dashboard tallies', () => {
  it('count what was added since the last read, share a read in progress, and keep credit through a rollback', async () => {
    dir = mkdtempSync(join(tmpdir(), 'tabtrain-tally-'));
    store = openSqliteStore(join(dir, 'db.sqlite'));
    store.createJob('j', defaultJobSpec(), 'running', { params: Float32Array.of(0), hash: 'h0' }, 0);
    const now = 1_000_000;
    const tallies = createTallies(sqliteStores(store).relay, { windowMs: 60_000, activeMs: 120_000, top: 2 });
    for (let i = 0; i < 30; i++) accept(store, `t-old-${i}`, `v-${i % 3}`, now - 600_000, 10); // ten minutes ago
    const [a, b] = await Promise.all([tallies.read(now), tallies.read(now)]);
    expect(b).toBe(a); // one read, not two counting the same rows
    expect(a.updates.get('j')).toEqual({ n: 30, bytes: 3000 });
    expect(a.leased).toBe(30);
    expect(a.recent.size).toBe(0); // outside the minute's window
    expect(a.devices).toEqual([]);

    store.addVolunteer('v-9', 'test', 'WebGPU: test gpu', now);
    for (let i = 0; i < 5; i++) accept(store, `t-new-${i}`, 'v-9', now - 1000, 100, 50);
    const c = await tallies.read(now);
    expect(c.updates.get('j')).toEqual({ n: 35, bytes: 3250 });
    expect(c.recent.get('j')).toEqual({ samples: 500, updates: 5 });
    expect(c.devices).toEqual([{ device: 'WebGPU: test gpu', volunteers: 1 }]);
    expect(c.leaderboard).toEqual([{ volunteerId: 'v-9', credit: 500, updates: 5 }, { volunteerId: 'v-0', credit: 100, updates: 10 }]);
    expect((await tallies.read(now + 61_000)).recent.size).toBe(0); // the window moved past them
    // the job page's table: each volunteer's tasks, accepted updates, samples and last lease on this job
    expect(await tallies.volunteersOf('j', 2)).toEqual([
      { volunteerId: 'v-9', device: 'WebGPU: test gpu', tasks: 5, accepted: 5, lastSeen: now - 1000, samples: 500 },
      { volunteerId: 'v-0', device: null, tasks: 10, accepted: 10, lastSeen: now - 600_000, samples: 100 },
    ]);
    expect(await tallies.volunteersOf('other')).toEqual([]);

    // a rollback discards updates from the model, not from the volunteers' credit (their pages count it so too)
    store.rollback('j', 0, now);
    expect((await tallies.read(now)).leaderboard[0]).toEqual({ volunteerId: 'v-9', credit: 500, updates: 5 });
  });

  it('the dashboard and the job page thin a long held-out curve to every n-th evaluation, the last and the best, and say how many there are', async () => {
    relay = await startOpsRelay();
    dir = relay.dataDir;
    const job = relay.app.store.listJobs()[0]?.jobId ?? 'none';
    expect(job).toBe('none'); // the ops relay starts empty: make one job with a long curve
    relay.app.scheduler.createJob('long', defaultJobSpec(), 'running');
    // the best held-out loss at version 517, between the thinned points
    for (let v = 0; v <= 1000; v++) relay.app.store.putEval('long', { version: v, loss: 0.1 + Math.abs(v - 517) / 1000, accuracy: 0.5, at: v });
    type Curve = { evals: { version: number }[]; evalCount: number };
    const snap = await (await fetch(`${relay.url}/api/ops/snapshot`)).json() as { jobs: ({ jobId: string } & Curve)[] };
    const overview = await (await fetch(`${relay.url}/api/ops/jobs/long/overview`)).json() as Curve;
    for (const long of [snap.jobs.find((j) => j.jobId === 'long')!, overview]) {
      expect(long.evalCount).toBe(1001);
      expect(long.evals.length).toBeLessThanOrEqual(CURVE_POINTS + 2);
      expect(long.evals.length).toBeGreaterThan(CURVE_POINTS / 2);
      expect(long.evals.at(-1)!.version).toBe(1000);
      expect(long.evals[1].version - long.evals[0].version).toBe(Math.ceil(1001 / CURVE_POINTS));
      expect(long.evals.map((e) => e.version)).toContain(517);
    }
  });
});
