// What the shared store must hold when several relays use one Postgres database at once, each through
// its own pool (as separate processes would): one version per round however many relays close it, each
// expired task expired and re-issued once, shard cursors never handed out twice, and every relay hearing
// of a new version through LISTEN/NOTIFY.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultJobSpec } from '../../server/default-job.ts';
import { openPostgresStore, type PostgresStore } from '../../server/store/postgres/index.ts';
import { listenForEvents, type StoreEvent } from '../../server/store/postgres/notify.ts';
import type { TaskRow } from '../../server/store/types.ts';
import { postgresPerFile } from '../helpers/postgres.ts';

const pgdb = postgresPerFile();
let relays: PostgresStore[] = [];
beforeAll(async () => {
  relays = [];
  for (let i = 0; i < 3; i++) relays.push(await openPostgresStore(pgdb.url));
});
afterAll(async () => { await Promise.all(relays.map((s) => s.close())); });

const N = 64;
const params = (v: number) => Float32Array.from({ length: N }, (_, i) => v + i / N);
let jobs = 0;
async function newJob(): Promise<string> {
  const jobId = `race-${++jobs}`;
  await relays[0].createJob(jobId, defaultJobSpec(), 'running', { params: params(0), hash: 'h0' }, Date.now());
  return jobId;
}
const task = (jobId: string, i: number, expiresAt: number): TaskRow => ({
  taskId: `${jobId}-t${i}`, jobId, volunteerId: `v${i % 5}`, baseVersion: 0, shard: i, seed: i, state: 'issued',
  issuedAt: 0, expiresAt, reissueOf: null, payloadHash: null, ack: null,
});

describe('several relays on one Postgres', () => {
  it('two relays closing the same round make exactly one version, and only one applies the updates', async () => {
    const jobId = await newJob();
    for (let i = 0; i < 4; i++) await relays[i % 3].insertTask(task(jobId, i, Date.now() + 60_000));
    for (let i = 0; i < 4; i++) {
      await relays[i % 3].acceptUpdate({
        taskId: `${jobId}-t${i}`, jobId, volunteerId: `v${i}`, baseVersion: 0, round: 1, weight: 1, payload: new Uint8Array([i, 1, 2]),
        payloadHash: `p${i}`, losses: [1, 0.5], samples: 32, computeMs: 5, acceptedAt: Date.now(), norm: 1,
      }, `ack${i}`);
    }
    expect(await relays[2].countPendingUpdates(jobId)).toBe(4);
    const ids = (await relays[1].pendingUpdates(jobId)).map((u) => u.taskId);
    for (let round = 1; round <= 3; round++) {
      const results = await Promise.allSettled(relays.map((s, r) => s.commitRound(jobId, {
        version: round, params: params(round * 10 + r), momentum: params(r), hash: `h${round}-relay${r}`,
      }, round === 1 ? ids : [], Date.now())));
      expect(results.filter((x) => x.status === 'fulfilled')).toHaveLength(1);
      for (const x of results) if (x.status === 'rejected') expect(String(x.reason)).toMatch(new RegExp(`at version ${round}, cannot commit ${round}`));
    }
    expect(await relays[0].listVersions(jobId)).toEqual([0, 1, 2, 3]);
    expect((await relays[1].getJob(jobId))!.version).toBe(3);
    // the winner's checkpoint is the one stored, bit for bit
    const v1 = (await relays[2].getVersion(jobId, 1))!;
    const winner = Number(v1.hash.split('relay')[1]);
    expect(Array.from(v1.params)).toEqual(Array.from(params(10 + winner)));
    expect(await relays[0].countPendingUpdates(jobId)).toBe(0);
    expect((await relays[0].listUpdates(jobId)).length).toBe(4);
    expect((await relays[0].appliedUpdates(jobId, 1)).map((u) => u.taskId).sort()).toEqual([...ids].sort());
    expect(await relays[0].samplesApplied(jobId)).toBe(4 * 32);
  });

  it('each due task is expired by one relay and re-issued once, and the live count stays exact', async () => {
    const jobId = await newJob();
    const now = Date.now();
    const due = 40, live = 10;
    for (let i = 0; i < due + live; i++) await relays[i % 3].insertTask(task(jobId, i, i < due ? now - 1000 : now + 600_000));
    expect(await relays[0].countLiveTasks(jobId, now)).toBe(due + live);
    const expired = (await Promise.all(relays.map((s) => s.expireDueTasks(now)))).flat().filter((t) => t.jobId === jobId);
    expect(expired.map((t) => t.taskId).sort()).toEqual(Array.from({ length: due }, (_, i) => `${jobId}-t${i}`).sort());
    expect(new Set(expired.map((t) => t.taskId)).size).toBe(due);
    expect(await relays[1].countLiveTasks(jobId, now)).toBe(live);
    // all three relays take re-issues as fast as they can: each expired task comes out exactly once
    const taken: string[] = [];
    await Promise.all(relays.map(async (s) => {
      for (let t = await s.takeReissue(jobId); t; t = await s.takeReissue(jobId)) taken.push(t.taskId);
    }));
    expect(taken.sort()).toEqual(expired.map((t) => t.taskId).sort());
  });

  it('an upload accepted while another relay expires its task counts the task once', async () => {
    const jobId = await newJob();
    const now = Date.now();
    const n = 30;
    for (let i = 0; i < n; i++) await relays[0].insertTask(task(jobId, i, now - 1));
    await Promise.all([
      relays[1].expireDueTasks(now),
      ...Array.from({ length: n }, (_, i) => relays[2].acceptUpdate({
        taskId: `${jobId}-t${i}`, jobId, volunteerId: 'v', baseVersion: 0, round: 1, weight: 1, payload: new Uint8Array([i]),
        payloadHash: `p${i}`, losses: [1], samples: 1, computeMs: 1, acceptedAt: now, norm: 1,
      }, 'ack')),
    ]);
    expect(await relays[0].countLiveTasks(jobId, now)).toBe(0);
    expect(await relays[0].countPendingUpdates(jobId)).toBe(n);
  });

  it('hands each shard-cursor position to one relay', async () => {
    const jobId = await newJob();
    const got = (await Promise.all(relays.map((s) => Promise.all(Array.from({ length: 30 }, () => s.nextShard(jobId, 1_000_000)))))).flat();
    expect(got.sort((a, b) => a - b)).toEqual(Array.from({ length: 90 }, (_, i) => i));
  });

  it('tells every relay of a new version and a job-state change made by another', async () => {
    const jobId = await newJob();
    const heard: StoreEvent[][] = [[], []];
    const listeners = heard.map(() => listenForEvents(pgdb.url));
    listeners.forEach((l, i) => l.on((e) => heard[i].push(e)));
    try {
      while (!listeners.every((l) => l.connected())) await new Promise((r) => setTimeout(r, 20));
      await relays[2].commitRound(jobId, { version: 1, params: params(1), momentum: params(0), hash: 'h1' }, [], Date.now());
      await relays[1].setJobStatus(jobId, 'paused');
      while (!heard.every((h) => h.filter((e) => 'jobId' in e && e.jobId === jobId).length >= 2)) await new Promise((r) => setTimeout(r, 20));
      for (const h of heard) {
        expect(h.filter((e) => 'jobId' in e && e.jobId === jobId)).toEqual([
          { kind: 'version', jobId, version: 1, hash: 'h1' },
          { kind: 'job', jobId, status: 'paused', version: 1 },
        ]);
      }
    } finally {
      await Promise.all(listeners.map((l) => l.close()));
    }
  });
});
