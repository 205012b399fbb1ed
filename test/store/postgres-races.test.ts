// What the shared store must hold when several relays use one Postgres database at once, each through
// its own pool (as separate processes would): one version per round however many relays close it, each
// expired task expired and re-issued once, shard cursors never handed out twice, and every relay hearing
// of a new version through LISTEN/NOTIFY.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultJobSpec } from '../../server/default-job.ts';
import { openPostgresStores, type PostgresStores } from '../../server/store/postgres/index.ts';
import type { RemoteEvent } from '../../server/store/postgres/notify.ts';
import type { TaskRow } from '../../server/store/types.ts';
import { ConflictError } from '../../server/store/errors.ts';
import { postgresPerFile } from '../helpers/postgres.ts';

const pgdb = postgresPerFile();
let relays: PostgresStores[] = [];
beforeAll(async () => {
  relays = [];
  for (let i = 0; i < 3; i++) relays.push(await openPostgresStores(pgdb.url));
});
afterAll(async () => { await Promise.all(relays.map((r) => r.close())); });

const N = 64;
const params = (v: number) => Float32Array.from({ length: N }, (_, i) => v + i / N);
let jobs = 0;
async function newJob(): Promise<string> {
  const jobId = `race-${++jobs}`;
  await relays[0].relay.createJob(jobId, defaultJobSpec(), 'running', { params: params(0), hash: 'h0' }, Date.now());
  return jobId;
}
const task = (jobId: string, i: number, expiresAt: number): TaskRow => ({
  taskId: `${jobId}-t${i}`, jobId, volunteerId: `v${i % 5}`, baseVersion: 0, shard: i, seed: i, state: 'issued',
  issuedAt: 0, expiresAt, reissueOf: null, payloadHash: null, ack: null,
});

describe('several relays on one Postgres', () => {
  it('two relays closing the same round make exactly one version, and only one applies the updates', async () => {
    const jobId = await newJob();
    for (let i = 0; i < 4; i++) await relays[i % 3].relay.insertTask(task(jobId, i, Date.now() + 60_000));
    for (let i = 0; i < 4; i++) {
      await relays[i % 3].relay.acceptUpdate({
        taskId: `${jobId}-t${i}`, jobId, volunteerId: `v${i}`, baseVersion: 0, round: 1, weight: 1, payload: new Uint8Array([i, 1, 2]),
        payloadHash: `p${i}`, losses: [1, 0.5], samples: 32, computeMs: 5, acceptedAt: Date.now(), norm: 1,
      }, `ack${i}`);
    }
    expect(await relays[2].relay.countPendingUpdates(jobId)).toBe(4);
    const ids = (await relays[1].relay.pendingUpdates(jobId)).map((u) => u.taskId);
    for (let round = 1; round <= 3; round++) {
      const results = await Promise.allSettled(relays.map((s, r) => s.relay.commitRound(jobId, {
        version: round, params: params(round * 10 + r), momentum: params(r), hash: `h${round}-relay${r}`,
      }, round === 1 ? ids : [], Date.now())));
      expect(results.filter((x) => x.status === 'fulfilled' && x.value === true)).toHaveLength(1);
      expect(results.filter((x) => x.status === 'fulfilled' && x.value === false)).toHaveLength(2);
    }
    expect(await relays[0].relay.listVersions(jobId)).toEqual([0, 1, 2, 3]);
    expect((await relays[1].relay.getJob(jobId))!.version).toBe(3);
    // the winner's checkpoint is the one stored, bit for bit
    const v1 = (await relays[2].relay.getVersion(jobId, 1))!;
    const winner = Number(v1.hash.split('relay')[1]);
    expect(Array.from(v1.params)).toEqual(Array.from(params(10 + winner)));
    expect(await relays[0].relay.countPendingUpdates(jobId)).toBe(0);
    expect((await relays[0].relay.listUpdates(jobId)).length).toBe(4);
    expect((await relays[0].relay.appliedUpdates(jobId, 1)).map((u) => u.taskId).sort()).toEqual([...ids].sort());
    expect(await relays[0].relay.samplesApplied(jobId)).toBe(4 * 32);
  });

  it('each due task is expired by one relay and re-issued once, and the live count stays exact', async () => {
    const jobId = await newJob();
    const now = Date.now();
    const due = 40, live = 10;
    for (let i = 0; i < due + live; i++) await relays[i % 3].relay.insertTask(task(jobId, i, i < due ? now - 1000 : now + 600_000));
    expect(await relays[0].relay.countLiveTasks(jobId, now)).toBe(live);
    const expired = (await Promise.all(relays.map((s) => s.relay.expireDueTasks(now)))).flat().filter((t) => t.jobId === jobId);
    expect(expired.map((t) => t.taskId).sort()).toEqual(Array.from({ length: due }, (_, i) => `${jobId}-t${i}`).sort());
    expect(new Set(expired.map((t) => t.taskId)).size).toBe(due);
    expect(await relays[1].relay.countTasks('expired', now)).toBeGreaterThanOrEqual(due);
    expect(await relays[1].relay.countLiveTasks(jobId, now)).toBe(live);
    // all three relays take re-issues as fast as they can: each expired task comes out exactly once
    const taken: string[] = [];
    await Promise.all(relays.map(async (s) => {
      for (let t = await s.relay.takeReissue(jobId); t; t = await s.relay.takeReissue(jobId)) taken.push(t.taskId);
    }));
    expect(taken.sort()).toEqual(expired.map((t) => t.taskId).sort());
  });

  it('an upload accepted while another relay expires its task counts the task once', async () => {
    const jobId = await newJob();
    const now = Date.now();
    const n = 30;
    for (let i = 0; i < n; i++) await relays[0].relay.insertTask(task(jobId, i, now - 1));
    await Promise.all([
      relays[1].relay.expireDueTasks(now),
      ...Array.from({ length: n }, (_, i) => relays[2].relay.acceptUpdate({
        taskId: `${jobId}-t${i}`, jobId, volunteerId: 'v', baseVersion: 0, round: 1, weight: 1, payload: new Uint8Array([i]),
        payloadHash: `p${i}`, losses: [1], samples: 1, computeMs: 1, acceptedAt: now, norm: 1,
      }, 'ack')),
    ]);
    expect(await relays[0].relay.countLiveTasks(jobId, now)).toBe(0);
    expect(await relays[0].relay.countPendingUpdates(jobId)).toBe(n);
  });

  it('hands each shard-cursor position to one relay', async () => {
    const jobId = await newJob();
    const got = (await Promise.all(relays.map((s) => Promise.all(Array.from({ length: 30 }, () => s.relay.nextShard(jobId, 1_000_000)))))).flat();
    expect(got.sort((a, b) => a - b)).toEqual(Array.from({ length: 90 }, (_, i) => i));
  });

  it('tells every other relay of a new version and a job-state change, and not the relay that made it', async () => {
    const jobId = await newJob();
    const heard: RemoteEvent[][] = [[], [], []];
    const off = relays.map((r, i) => r.remote.on((e) => { if (e.name !== 'resync' && e.name !== 'job-created' && e.event.jobId === jobId) heard[i].push(e); }));
    try {
      while (!relays.every((r) => r.remote.connected())) await new Promise((r) => setTimeout(r, 20));
      await relays[2].relay.commitRound(jobId, { version: 1, params: params(1), momentum: params(0), hash: 'h1' }, [], 1234);
      await relays[1].relay.setJobStatus(jobId, 'paused', 5678);
      // relay 0 made neither change: it hears both; each maker hears only the other's
      while (heard[0].length < 2 || heard[1].length < 1 || heard[2].length < 1) await new Promise((r) => setTimeout(r, 20));
      const version = { name: 'round-committed', event: { jobId, version: 1, hash: 'h1', at: 1234, updates: 0 } };
      const paused = { name: 'job-state-changed', event: { jobId, from: 'running', to: 'paused', at: 5678 } };
      expect(heard[0]).toMatchObject([version, paused]);
      expect(heard[1]).toMatchObject([version]);
      expect(heard[2]).toMatchObject([paused]);
    } finally {
      off.forEach((f) => f());
    }
  });

  it('fires its own events after the commit, and none for a transaction that rolled back', async () => {
    const jobId = await newJob();
    const seen: string[] = [];
    const off = [
      relays[0].on('job-state-changed', (e) => { seen.push(`after ${e.to}`); }),
      relays[0].onCommitting('job-state-changed', async (e, tx) => {
        seen.push(`committing ${e.to}`);
        // the transaction's handle sees its own change before the commit
        expect((await tx.relay.getJob(jobId))!.status).toBe(e.to);
      }),
    ];
    try {
      await expect(relays[0].transaction(async (tx) => {
        await tx.relay.setJobStatus(jobId, 'paused', 1);
        throw new Error('changed my mind');
      })).rejects.toThrow('changed my mind');
      expect((await relays[0].relay.getJob(jobId))!.status).toBe('running');
      expect(seen).toEqual(['committing paused']);
      await relays[0].relay.setJobStatus(jobId, 'paused', 2);
      expect(seen).toEqual(['committing paused', 'committing paused', 'after paused']);
      // the store itself inside its own transaction would be a second transaction waiting on the first
      await expect(relays[0].transaction(async () => relays[0].relay.setJobStatus(jobId, 'running', 3))).rejects.toThrow(/transaction's handle/);
    } finally {
      off.forEach((f) => f());
    }
  });

  it('keeps one audit chain when three relays append at once', async () => {
    await Promise.all(relays.flatMap((r, i) => Array.from({ length: 20 }, (_, k) => r.ops.appendAudit({ actor: `relay${i}`, action: 'round.accept', detail: { k } }, 1000 + k))));
    const records = await relays[0].ops.auditRecords(0, 1000);
    expect(records.map((r) => r.seq)).toEqual(Array.from({ length: 60 }, (_, i) => i + 1));
    for (let i = 1; i < records.length; i++) expect(records[i].prevHash).toBe(records[i - 1].hash);
  });

  it('gives each proof-of-work challenge and each open spot check to one relay', async () => {
    const uses = await Promise.all(relays.map((r) => r.defence.usePowChallenge('c1', Date.now() + 60_000, Date.now())));
    expect(uses.filter(Boolean)).toHaveLength(1);
    for (let i = 0; i < 12; i++) {
      await relays[i % 3].defence.addReplica({ taskId: `rep${i}`, jobId: 'spot', groupId: `g${i}`, volunteerId: 'a', baseVersion: 0, shard: i, seed: i, open: true }, '', i);
    }
    const taken = (await Promise.all(relays.flatMap((r, i) => Array.from({ length: 6 }, (_, k) => r.defence.takeOpenReplica('spot', `b${i}-${k}`, 0)))))
      .filter((x) => x !== undefined).map((x) => x.taskId);
    expect(taken.sort()).toEqual(Array.from({ length: 12 }, (_, i) => `rep${i}`).sort());
  });

  it('lets one of several relays create a job of one id; the others are told it exists', async () => {
    const made = await Promise.allSettled(relays.map((r, i) => r.relay.createJob('default', defaultJobSpec(), 'running', { params: params(i), hash: `h${i}` }, i)));
    expect(made.filter((m) => m.status === 'fulfilled')).toHaveLength(1);
    for (const m of made) if (m.status === 'rejected') expect(m.reason).toBeInstanceOf(ConflictError);
    expect(await relays[2].relay.listVersions('default')).toEqual([0]);
  });

  it('makes one lease secret for every relay', async () => {
    const secrets = await Promise.all(relays.map((r) => r.leaseSecret()));
    expect(secrets[0].length).toBe(32);
    for (const s of secrets) expect(s.equals(secrets[0])).toBe(true);
  });
});
