// The store contract (server/store/types.ts), written once and run on every implementation: SQLite here
// (./sqlite.contract.test.ts), Postgres with its own factory. Each test names the behaviour it holds the
// store to; none of them knows how the store keeps its rows.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Eval, Finish, Hyperparameters } from '../../shared/protocol/messages.ts';
import { defaultJobSpec } from '../../server/default-job.ts';
import { ConflictError, IllegalTransitionError, NotFoundError, StoreError } from '../../server/store/errors.ts';
import type { JobSpec, NextVersion, Stores, StoreEvents, TaskRow, UpdateRow } from '../../server/store/types.ts';

export type StoreFactory = () => Promise<{ stores: Stores; close(): Promise<void> }>;

const spec: JobSpec = defaultJobSpec();
const floats = (...x: number[]) => new Float32Array(x);
const initial = { params: floats(1, 2, 3, 4), hash: 'h0' };
const next = (version: number, fill = version): NextVersion => ({
  version, params: new Float32Array(4).fill(fill), momentum: new Float32Array(4).fill(fill / 10), hash: `h${version}`,
  delta: { bytes: new Uint8Array([version, 1, 2]), sha256: `d${version}` }, residual: new Float32Array(4).fill(0.5),
});
const task = (taskId: string, o: Partial<TaskRow> = {}): TaskRow => ({
  taskId, jobId: 'j', volunteerId: 'v1', baseVersion: 0, shard: 0, seed: 7, state: 'issued', issuedAt: 1_000, expiresAt: 2_000,
  reissueOf: null, payloadHash: null, ack: null, ...o,
});
const update = (taskId: string, o: Partial<UpdateRow> = {}): UpdateRow => ({
  taskId, jobId: 'j', volunteerId: 'v1', baseVersion: 0, round: 0, weight: 1, payload: new Uint8Array([1, 2, 3, taskId.length]),
  payloadHash: `p-${taskId}`, losses: [2, 1], samples: 64, computeMs: 5, acceptedAt: 1_500, norm: 0.5, ...o,
});
const evalOf = (version: number, loss: number): Eval => ({ version, loss, accuracy: 1 - loss / 10, at: 3_000 + version });

export function describeStoreContract(name: string, make: StoreFactory): void {
  describe(`store contract: ${name}`, () => {
    let stores: Stores;
    let close: () => Promise<void>;
    beforeEach(async () => ({ stores, close } = await make()));
    afterEach(async () => close());

    /** The events of one kind fired after commit, collected. */
    const heard = <E extends keyof StoreEvents>(n: E): StoreEvents[E][] => {
      const got: StoreEvents[E][] = [];
      stores.on(n, (e) => { got.push(e); });
      return got;
    };
    const job = () => stores.relay.createJob('j', spec, 'running', initial, 100);
    /** A job with one issued task per id, accepted as updates. */
    async function withPending(...ids: string[]): Promise<void> {
      await job();
      for (const id of ids) {
        await stores.relay.insertTask(task(id));
        await stores.relay.acceptUpdate(update(id), `{"ack":"${id}"}`);
      }
    }

    describe('jobs', () => {
      it('creates a job at version 0 with its checkpoint, momentum zero, and fires job-created', async () => {
        const created = heard('job-created');
        const j = await job();
        expect(j).toMatchObject({ jobId: 'j', status: 'running', version: 0, roundStartedAt: 100, createdAt: 100, name: spec.name, model: spec.model });
        const v = await stores.relay.getVersion('j', 0);
        expect([...v!.params]).toEqual([1, 2, 3, 4]);
        expect([...v!.momentum]).toEqual([0, 0, 0, 0]);
        expect(v!.hash).toBe('h0');
        expect(created.map((e) => e.job.jobId)).toEqual(['j']);
      });

      it('answers undefined for a job it does not have, and lists jobs oldest first, filtered by status', async () => {
        expect(await stores.relay.getJob('nope')).toBeUndefined();
        await stores.relay.createJob('b', spec, 'pending', initial, 200);
        await stores.relay.createJob('a', spec, 'running', initial, 300);
        expect((await stores.relay.listJobs()).map((j) => j.jobId)).toEqual(['b', 'a']);
        expect((await stores.relay.listJobs('pending')).map((j) => j.jobId)).toEqual(['b']);
      });

      it('changes status along the transition table, restarts the round timer and fires job-state-changed', async () => {
        const changed = heard('job-state-changed');
        await stores.relay.createJob('j', spec, 'pending', initial, 100);
        const j = await stores.relay.setJobStatus('j', 'running', 500);
        expect(j.status).toBe('running');
        expect(j.roundStartedAt).toBe(500);
        expect(changed).toEqual([{ jobId: 'j', from: 'pending', to: 'running', at: 500 }]);
      });

      it('refuses a transition the table does not allow with IllegalTransitionError, changing nothing and firing nothing', async () => {
        const changed = heard('job-state-changed');
        await stores.relay.createJob('j', spec, 'pending', initial, 100);
        const e = await stores.relay.setJobStatus('j', 'paused', 500).catch((x: unknown) => x);
        expect(e).toBeInstanceOf(IllegalTransitionError);
        expect(e).toMatchObject({ from: 'pending', to: 'paused' });
        expect((await stores.relay.getJob('j'))!.status).toBe('pending');
        expect(changed).toEqual([]);
      });

      it('refuses a status change of an unknown job with NotFoundError naming the job', async () => {
        const e = await stores.relay.setJobStatus('ghost', 'running', 1).catch((x: unknown) => x);
        expect(e).toBeInstanceOf(NotFoundError);
        expect(e).toMatchObject({ entity: 'job', id: 'ghost' });
      });

      it('replaces hyperparameters, keeping the rest of the spec, and fires hyperparameters-changed', async () => {
        const changed = heard('hyperparameters-changed');
        await job();
        const h: Hyperparameters = { ...spec.hyperparameters, until: { versions: 9 } };
        const j = await stores.relay.setHyperparameters('j', h);
        expect(j.hyperparameters.until).toEqual({ versions: 9 });
        expect((await stores.relay.getJob('j'))!.name).toBe(spec.name);
        expect(changed).toEqual([{ jobId: 'j', hyperparameters: h }]);
      });
    });

    describe('rounds and versions', () => {
      it('commits a round: stores the version, advances the job, marks its updates applied and fires round-committed', async () => {
        const committed = heard('round-committed');
        await withPending('t1', 't2');
        expect(await stores.relay.countPendingUpdates('j')).toBe(2);
        expect(await stores.relay.commitRound('j', next(1), ['t1', 't2'], 900)).toBe(true);
        const j = (await stores.relay.getJob('j'))!;
        expect(j.version).toBe(1);
        expect(j.roundStartedAt).toBe(900);
        expect(await stores.relay.countPendingUpdates('j')).toBe(0);
        expect(await stores.relay.pendingUpdates('j')).toEqual([]);
        expect((await stores.relay.appliedUpdates('j', 1)).map((u) => u.taskId)).toEqual(['t1', 't2']);
        const v = (await stores.relay.getVersion('j', 1))!;
        expect([...v.params]).toEqual([1, 1, 1, 1]);
        expect([...v.residual!]).toEqual([0.5, 0.5, 0.5, 0.5]);
        expect(committed).toEqual([{ jobId: 'j', version: 1, hash: 'h1', taskIds: ['t1', 't2'], at: 900 }]);
      });

      it('refuses a stale commit (the job is no longer at its base version): false, nothing written, nothing fired', async () => {
        const committed = heard('round-committed');
        await withPending('t1');
        expect(await stores.relay.commitRound('j', next(1), ['t1'], 900)).toBe(true);
        expect(await stores.relay.commitRound('j', next(1, 5), [], 901)).toBe(false);
        expect(await stores.relay.commitRound('j', next(3), [], 902)).toBe(false);
        expect((await stores.relay.getJob('j'))!.version).toBe(1);
        expect([...(await stores.relay.getParams('j', 1))!.params]).toEqual([1, 1, 1, 1]);
        expect(committed.length).toBe(1);
      });

      it('lets exactly one of several concurrent closers of a round commit it', async () => {
        await withPending('t1');
        const results = await Promise.all([1, 2, 3, 4].map((i) => stores.relay.commitRound('j', next(1, i), ['t1'], 900 + i)));
        expect(results.filter(Boolean).length).toBe(1);
        expect((await stores.relay.getJob('j'))!.version).toBe(1);
      });

      it('reads params and hash alone, version hashes, versions and checkpoints with when they were written', async () => {
        await withPending('t1');
        await stores.relay.commitRound('j', next(1), ['t1'], 900);
        expect(await stores.relay.getParams('j', 1)).toEqual({ hash: 'h1', params: floats(1, 1, 1, 1) });
        expect(await stores.relay.getParams('j', 7)).toBeUndefined();
        expect(await stores.relay.versionHash('j', 0)).toBe('h0');
        expect(await stores.relay.versionHash('j', 9)).toBeUndefined();
        expect(await stores.relay.listVersions('j')).toEqual([0, 1]);
        expect(await stores.relay.listCheckpoints('j')).toEqual([{ version: 0, hash: 'h0', at: 100 }, { version: 1, hash: 'h1', at: 900 }]);
      });

      it('keeps each version\'s published delta and lists those a volunteer at an older version can apply', async () => {
        await job();
        await stores.relay.commitRound('j', next(1), [], 900);
        await stores.relay.commitRound('j', next(2), [], 901);
        expect([...(await stores.relay.getDelta('j', 2))!]).toEqual([2, 1, 2]);
        expect(await stores.relay.getDelta('j', 0)).toBeUndefined();
        expect(await stores.relay.listDeltas('j', 0, 2)).toEqual([
          { version: 1, bytes: 3, sha256: 'd1', baseHash: 'h0' }, { version: 2, bytes: 3, sha256: 'd2', baseHash: 'h1' },
        ]);
        expect((await stores.relay.listDeltas('j', 1, 2)).map((d) => d.version)).toEqual([2]);
      });

      it('rolls back to a kept version: its params and momentum are current, later versions, evals and unapplied updates dropped, rolled-back fired', async () => {
        const rolled = heard('rolled-back');
        await withPending('t1');
        await stores.relay.commitRound('j', next(1), ['t1'], 900);
        await stores.relay.insertTask(task('t2', { baseVersion: 1 }));
        await stores.relay.acceptUpdate(update('t2', { baseVersion: 1, round: 1 }), '{}');
        await stores.relay.commitRound('j', next(2), ['t2'], 901);
        await stores.relay.insertTask(task('t3', { baseVersion: 2 }));
        await stores.relay.acceptUpdate(update('t3', { baseVersion: 2, round: 2 }), '{}');
        await stores.relay.putEval('j', evalOf(1, 2));
        await stores.relay.putEval('j', evalOf(2, 1));
        expect(await stores.relay.appliedAfter('j', 1)).toEqual(['t2']);
        const j = await stores.relay.rollback('j', 1, 1_000);
        expect(j.version).toBe(1);
        expect(j.roundStartedAt).toBe(1_000);
        expect(await stores.relay.listVersions('j')).toEqual([0, 1]);
        expect((await stores.relay.listEvals('j')).map((e) => e.version)).toEqual([1]);
        expect(await stores.relay.countPendingUpdates('j')).toBe(0);
        expect(await stores.relay.samplesApplied('j')).toBe(64);
        expect(rolled).toEqual([{ jobId: 'j', from: 2, to: 1, at: 1_000 }]);
      });

      it('refuses a rollback to a version without a checkpoint with NotFoundError(version), changing nothing', async () => {
        await job();
        const e = await stores.relay.rollback('j', 5, 1).catch((x: unknown) => x);
        expect(e).toBeInstanceOf(NotFoundError);
        expect((e as NotFoundError).entity).toBe('version');
        expect((await stores.relay.getJob('j'))!.version).toBe(0);
      });

      it('prunes old checkpoints except version 0, multiples of `every` and the best-evaluated one, and old payloads', async () => {
        await job();
        for (let v = 1; v <= 6; v++) {
          await stores.relay.insertTask(task(`t${v}`, { baseVersion: v - 1 }));
          await stores.relay.acceptUpdate(update(`t${v}`, { baseVersion: v - 1 }), '{}');
          await stores.relay.commitRound('j', next(v), [`t${v}`], 900 + v);
        }
        await stores.relay.putEval('j', evalOf(3, 0.1));
        await stores.relay.putEval('j', evalOf(4, 0.9));
        const dropped = await stores.relay.pruneHistory('j', 5, 2);
        expect(await stores.relay.listVersions('j')).toEqual([0, 2, 3, 4, 6]);
        expect(dropped).toEqual({ checkpoints: 2, payloads: 5 });
        expect(await stores.relay.appliedUpdates('j', 5)).toEqual([]);
        expect((await stores.relay.appliedUpdates('j', 6)).map((u) => u.taskId)).toEqual(['t6']);
        expect(await stores.relay.listUpdates('j')).toHaveLength(6);
      });

      it('names where a pool worker reads a version\'s params', async () => {
        await job();
        const src = stores.relay.paramsSource('j', 0);
        expect(src instanceof Float32Array ? src.length : src).toEqual(src instanceof Float32Array ? 4 : expect.objectContaining({ jobId: 'j', version: 0 }));
      });
    });

    describe('volunteers', () => {
      it('registers a volunteer once: a second registration of the id answers false and changes nothing', async () => {
        expect(await stores.relay.hasVolunteer('v1')).toBe(false);
        expect(await stores.relay.addVolunteer('v1', 'agent', 'webgpu', 1)).toBe(true);
        expect(await stores.relay.addVolunteer('v1', 'other', 'cpu', 2)).toBe(false);
        expect(await stores.relay.hasVolunteer('v1')).toBe(true);
        expect(await stores.relay.volunteerDevice('v1')).toBe('webgpu');
        expect(await stores.relay.volunteerDevice('v2')).toBeUndefined();
        expect(await stores.relay.countVolunteers()).toBe(1);
      });
    });

    describe('tasks and leases', () => {
      it('stores an issued task, reads it back and fires task-issued', async () => {
        const issued = heard('task-issued');
        await job();
        await stores.relay.insertTask(task('t1'));
        expect(await stores.relay.getTask('t1')).toEqual(task('t1'));
        expect(await stores.relay.getTask('nope')).toBeUndefined();
        expect(issued.map((e) => e.task.taskId)).toEqual(['t1']);
      });

      it('counts live tasks as of `now`: a lease due by then is not live even before it is swept', async () => {
        await job();
        await stores.relay.insertTask(task('t1', { expiresAt: 2_000 }));
        await stores.relay.insertTask(task('t2', { expiresAt: 3_000, volunteerId: 'v2' }));
        expect(await stores.relay.countLiveTasks('j', 1_500)).toBe(2);
        expect(await stores.relay.countLiveTasks('j', 2_000)).toBe(1);
        expect(await stores.relay.countLiveTasks('j', 3_500)).toBe(0);
        expect(await stores.relay.countLiveTasksOf('j', 'v2', 2_500)).toBe(1);
        expect(await stores.relay.countLiveTasksOf('j', 'v1', 2_500)).toBe(0);
        expect(await stores.relay.countTasks('issued', 2_500)).toBe(1);
      });

      it('expires due leases once: each due task to exactly one caller, then re-issues each exactly once, oldest first', async () => {
        const ended = heard('tasks-ended');
        await job();
        await stores.relay.insertTask(task('t1', { expiresAt: 2_000, shard: 3, seed: 9 }));
        await stores.relay.insertTask(task('t2', { expiresAt: 2_100 }));
        await stores.relay.insertTask(task('t3', { expiresAt: 9_000 }));
        const [a, b] = await Promise.all([stores.relay.expireDueTasks(2_500), stores.relay.expireDueTasks(2_500)]);
        expect([...a, ...b].map((t) => t.taskId).sort()).toEqual(['t1', 't2']);
        expect([...a, ...b].every((t) => t.state === 'expired')).toBe(true);
        expect((await stores.relay.getTask('t1'))!.state).toBe('expired');
        expect(await stores.relay.countTasks('expired', 0)).toBe(2);
        expect(ended.flatMap((e) => e.tasks.map((t) => t.taskId)).sort()).toEqual(['t1', 't2']);
        expect(ended.every((e) => e.state === 'expired')).toBe(true);
        const claims = await Promise.all([1, 2, 3].map(() => stores.relay.takeReissue('j')));
        expect(claims.filter(Boolean).map((t) => t!.taskId).sort()).toEqual(['t1', 't2']);
        expect(claims.find((t) => t?.taskId === 't1')).toMatchObject({ shard: 3, seed: 9 });
        expect(await stores.relay.takeReissue('j')).toBeUndefined();
      });

      it('rejects an issued task once (false after), frees its slot and fires tasks-ended', async () => {
        const ended = heard('tasks-ended');
        await job();
        await stores.relay.insertTask(task('t1'));
        expect(await stores.relay.rejectTask('t1')).toBe(true);
        expect(await stores.relay.rejectTask('t1')).toBe(false);
        expect(await stores.relay.rejectTask('nope')).toBe(false);
        expect((await stores.relay.getTask('t1'))!.state).toBe('rejected');
        expect(await stores.relay.countLiveTasks('j', 0)).toBe(0);
        expect(ended).toEqual([{ state: 'rejected', tasks: [{ taskId: 't1', jobId: 'j', volunteerId: 'v1' }] }]);
      });

      it('ends a job\'s issued leases, or only those based above a version, and counts them', async () => {
        await job();
        await stores.relay.insertTask(task('t0', { baseVersion: 0 }));
        await stores.relay.insertTask(task('t1', { baseVersion: 1 }));
        await stores.relay.insertTask(task('t2', { baseVersion: 2 }));
        expect(await stores.relay.endLeases('j', 0)).toBe(2);
        expect((await stores.relay.getTask('t0'))!.state).toBe('issued');
        expect(await stores.relay.endLeases('j')).toBe(1);
        expect(await stores.relay.countLiveTasks('j', 0)).toBe(0);
      });

      it('hands out shard numbers round robin, each value to exactly one of concurrent callers', async () => {
        await job();
        const got = await Promise.all(Array.from({ length: 8 }, () => stores.relay.nextShard('j', 4)));
        expect(got.sort()).toEqual([0, 0, 1, 1, 2, 2, 3, 3]);
      });

      it('pages issued tasks and accepted updates by position, in insertion order', async () => {
        await withPending('t1', 't2', 't3');
        const first = await stores.relay.tasksSince(0, 2);
        expect(first.map((t) => t.volunteerId)).toEqual(['v1', 'v1']);
        const rest = await stores.relay.tasksSince(first[1].seq, 10);
        expect(rest).toHaveLength(1);
        expect(rest[0].seq).toBeGreaterThan(first[1].seq);
        const ups = await stores.relay.updatesSince(0, 10);
        expect(ups.map((u) => [u.jobId, u.samples, u.bytes])).toEqual([['j', 64, 4], ['j', 64, 4], ['j', 64, 4]]);
        expect(await stores.relay.updatesSince(ups[2].seq, 10)).toEqual([]);
      });
    });

    describe('updates', () => {
      it('accepts an update with its answer atomically: the task is accepted with payload hash and ack, update-accepted fired', async () => {
        const accepted = heard('update-accepted');
        await job();
        await stores.relay.insertTask(task('t1'));
        await stores.relay.acceptUpdate(update('t1'), '{"round":0}');
        expect(await stores.relay.getTask('t1')).toMatchObject({ state: 'accepted', payloadHash: 'p-t1', ack: '{"round":0}' });
        expect(await stores.relay.countLiveTasks('j', 0)).toBe(0);
        const [u] = await stores.relay.pendingUpdates('j');
        expect(u).toEqual(update('t1'));
        expect(await stores.relay.pendingNorms('j')).toEqual([0.5]);
        expect(accepted).toEqual([{ jobId: 'j', taskId: 't1', volunteerId: 'v1', samples: 64, bytes: 4, at: 1_500 }]);
      });

      it('gives the pending updates\' samples weighted by their weights, leaving out weight 0 (a spot check\'s second copy)', async () => {
        await job();
        expect(await stores.relay.pendingMeanSamples('j')).toBeUndefined();
        for (const id of ['m1', 'm2', 'm3']) await stores.relay.insertTask(task(id));
        await stores.relay.acceptUpdate(update('m1', { weight: 1, samples: 64 }), '{}');
        await stores.relay.acceptUpdate(update('m2', { weight: 0.25, samples: 640 }), '{}');
        await stores.relay.acceptUpdate(update('m3', { weight: 0, samples: 10_000 }), '{}');
        expect(await stores.relay.pendingMeanSamples('j')).toBeCloseTo((64 + 0.25 * 640) / 1.25, 9);
      });

      it('group commit: concurrent accepts share transactions, and every one acknowledged is stored and announced', async () => {
        const accepted = heard('update-accepted');
        await job();
        const ids = Array.from({ length: 40 }, (_, i) => `g${i}`);
        for (const id of ids) await stores.relay.insertTask(task(id));
        const before = stores.groupCommitStats!();
        await Promise.all(ids.map((id) => stores.relay.acceptUpdate(update(id), `{"ack":"${id}"}`)));
        const after = stores.groupCommitStats!();
        expect(after.items - before.items).toBe(40);
        expect(after.batches - before.batches).toBeLessThan(40);
        expect((await stores.relay.listUpdates('j')).map((u) => u.taskId).sort()).toEqual([...ids].sort());
        for (const id of ids) expect(await stores.relay.getTask(id)).toMatchObject({ state: 'accepted', ack: `{"ack":"${id}"}` });
        expect(accepted.map((e) => e.taskId).sort()).toEqual([...ids].sort());
        expect(await stores.relay.countPendingUpdates('j')).toBe(40);
      });

      it('group commit: an update that fails in a shared transaction is refused alone; the others are stored', async () => {
        await job();
        const ids = Array.from({ length: 12 }, (_, i) => `f${i}`);
        for (const id of ids) await stores.relay.insertTask(task(id));
        // f3 sent twice at once (a re-send racing itself): one copy is stored, the other refused
        const sends = [...ids, 'f3'].map((id) => stores.relay.acceptUpdate(update(id), `{"ack":"${id}"}`));
        const outcomes = await Promise.allSettled(sends);
        expect(outcomes.filter((o) => o.status === 'rejected')).toHaveLength(1);
        expect(outcomes.slice(0, 3).every((o) => o.status === 'fulfilled')).toBe(true);
        expect(outcomes.slice(4, 12).every((o) => o.status === 'fulfilled')).toBe(true);
        expect((await stores.relay.listUpdates('j')).map((u) => u.taskId).sort()).toEqual([...ids].sort());
        expect(await stores.relay.countPendingUpdates('j')).toBe(12);
      });

      it('group commit: an update whose committing listener throws is refused and not stored; the rest of its batch is', async () => {
        await job();
        const ids = Array.from({ length: 10 }, (_, i) => `c${i}`);
        for (const id of ids) await stores.relay.insertTask(task(id));
        stores.onCommitting('update-accepted', (e) => { if (e.taskId === 'c4') throw new Error('listener refuses c4'); });
        const outcomes = await Promise.allSettled(ids.map((id) => stores.relay.acceptUpdate(update(id), '{}')));
        expect(outcomes.map((o) => o.status)).toEqual(ids.map((id) => (id === 'c4' ? 'rejected' : 'fulfilled')));
        expect((outcomes[4] as PromiseRejectedResult).reason).toMatchObject({ message: 'listener refuses c4' });
        expect((await stores.relay.listUpdates('j')).map((u) => u.taskId).sort()).toEqual(ids.filter((id) => id !== 'c4').sort());
        expect(await stores.relay.getTask('c4')).toMatchObject({ state: 'issued', ack: null });
        expect(await stores.relay.countPendingUpdates('j')).toBe(9);
      });

      it('reads pending updates one at a time: their ids in arrival order, each with its payload, none once applied', async () => {
        await withPending('t1', 't2', 't3');
        expect(await stores.relay.pendingUpdateIds('j')).toEqual(['t1', 't2', 't3']);
        expect(await stores.relay.pendingUpdate('t2')).toEqual((await stores.relay.pendingUpdates('j'))[1]);
        expect(await stores.relay.pendingUpdate('nope')).toBeUndefined();
        const v = await stores.relay.getVersion('j', 0);
        expect(await stores.relay.commitRound('j', { version: 1, params: v!.params, momentum: v!.momentum, hash: 'h1' }, ['t1', 't2'], 2_000)).toBe(true);
        expect(await stores.relay.pendingUpdateIds('j')).toEqual(['t3']);
        expect(await stores.relay.pendingUpdate('t1')).toBeUndefined();
      });

      it('keeps a large payload intact', async () => {
        await job();
        await stores.relay.insertTask(task('big'));
        const payload = new Uint8Array(300 * 1024).map((_, i) => i % 251);
        await stores.relay.acceptUpdate(update('big', { payload }), '{}');
        expect((await stores.relay.pendingUpdates('j'))[0].payload).toEqual(payload);
      });

      it('lists every update without payloads, the recent non-zero norms oldest first, and samples applied in the current history', async () => {
        await withPending('t1', 't2');
        await stores.relay.insertTask(task('t3'));
        await stores.relay.acceptUpdate(update('t3', { norm: 0, acceptedAt: 1_600 }), '{}');
        const all = await stores.relay.listUpdates('j');
        expect(all.map((u) => u.taskId)).toEqual(['t1', 't2', 't3']);
        expect(all.every((u) => !('payload' in u))).toBe(true);
        expect(await stores.relay.recentNorms('j', 5)).toEqual([0.5, 0.5]);
        expect(await stores.relay.samplesApplied('j')).toBe(0);
        await stores.relay.commitRound('j', next(1), ['t1', 't2'], 900);
        expect(await stores.relay.samplesApplied('j')).toBe(128);
        expect(await stores.relay.countPendingUpdates('j')).toBe(1);
      });
    });

    describe('evaluations and finishes', () => {
      it('stores an evaluation (replacing one of the same version), lists them in version order and fires eval-stored with the earlier ones', async () => {
        const stored = heard('eval-stored');
        await job();
        await stores.relay.putEval('j', evalOf(2, 1));
        await stores.relay.putEval('j', evalOf(0, 3));
        await stores.relay.putEval('j', evalOf(2, 0.5));
        expect(await stores.relay.listEvals('j')).toEqual([evalOf(0, 3), evalOf(2, 0.5)]);
        expect(await stores.relay.countEvals('j')).toBe(2);
        expect(stored.map((e) => e.earlier.length)).toEqual([0, 1, 2]);
        expect(stored[2].eval).toEqual(evalOf(2, 0.5));
      });

      it('thins a long curve to every step-th version plus the latest and the best', async () => {
        await job();
        for (let v = 0; v <= 10; v++) await stores.relay.putEval('j', evalOf(v, v === 7 ? 0.01 : 5 - v / 10));
        expect((await stores.relay.thinnedEvals('j', 4)).map((e) => e.version)).toEqual([0, 4, 7, 8, 10]);
      });

      it('records, reads and clears why a job finished', async () => {
        await job();
        const f: Finish = { rule: 'versions', reason: 'budget', releasedVersion: 0, releasedHash: 'h0', loss: 1.5, accuracy: null, at: 5 };
        expect(await stores.relay.getFinish('j')).toBeUndefined();
        await stores.relay.putFinish('j', f);
        expect(await stores.relay.getFinish('j')).toEqual(f);
        await stores.relay.clearFinish('j');
        expect(await stores.relay.getFinish('j')).toBeUndefined();
      });
    });

    describe('transactions and events', () => {
      it('commits every change of a transaction together and fires their events after the commit, in order', async () => {
        const order: string[] = [];
        stores.on('job-created', () => { order.push('created'); });
        stores.on('job-state-changed', () => { order.push('state'); });
        const r = await stores.transaction(async (tx) => {
          await tx.relay.createJob('j', spec, 'pending', initial, 1);
          await tx.relay.setJobStatus('j', 'running', 2);
          expect(order).toEqual([]); // not before the commit
          return 'done';
        });
        expect(r).toBe('done');
        expect(order).toEqual(['created', 'state']);
        expect((await stores.relay.getJob('j'))!.status).toBe('running');
      });

      it('rolls every change back when the function throws, fires nothing, and rethrows', async () => {
        const created = heard('job-created');
        const e = await stores.transaction(async (tx) => {
          await tx.relay.createJob('j', spec, 'running', initial, 1);
          await tx.ops.appendAudit({ actor: 't', action: 'job.submit', jobId: 'j' }, 1);
          throw new Error('changed my mind');
        }).catch((x: unknown) => x);
        expect((e as Error).message).toBe('changed my mind');
        expect(await stores.relay.getJob('j')).toBeUndefined();
        expect(await stores.ops.countAudit()).toBe(0);
        expect(created).toEqual([]);
      });

      it('rolls back only a nested transaction that throws, and drops only its events', async () => {
        const created = heard('job-created');
        await stores.transaction(async (tx) => {
          await tx.relay.createJob('a', spec, 'running', initial, 1);
          await tx.transaction(async (inner) => {
            await inner.relay.createJob('b', spec, 'running', initial, 2);
            throw new Error('not b');
          }).catch(() => undefined);
        });
        expect((await stores.relay.listJobs()).map((j) => j.jobId)).toEqual(['a']);
        expect(created.map((e) => e.job.jobId)).toEqual(['a']);
      });

      it('keeps other callers from seeing a transaction\'s changes before it commits', async () => {
        let release!: () => void;
        const held = new Promise<void>((r) => { release = r; });
        const tx = stores.transaction(async (t) => {
          await t.relay.createJob('j', spec, 'running', initial, 1);
          await held;
        });
        const seen = stores.relay.getJob('j');
        release();
        await tx;
        expect((await seen)?.jobId).toBe('j'); // read after the commit, never a half state
      });

      it('never lets another caller read a transaction\'s changes that then roll back', async () => {
        let release!: () => void;
        const held = new Promise<void>((r) => { release = r; });
        const tx = stores.transaction(async (t) => {
          await t.relay.createJob('j', spec, 'running', initial, 1);
          await held;
          throw new Error('rolled back');
        });
        const seen = stores.relay.getJob('j');
        const jobs = stores.relay.listJobs();
        release();
        await expect(tx).rejects.toThrow('rolled back');
        expect(await seen).toBeUndefined();
        expect(await jobs).toEqual([]);
      });

      it('lets work a transaction scheduled for later (a timer) use the store once the transaction has ended', async () => {
        let later!: Promise<string | undefined>;
        await stores.transaction(async (tx) => {
          await tx.relay.createJob('j', spec, 'running', initial, 1);
          later = new Promise((resolve, reject) => setImmediate(() => stores.relay.getJob('j').then((j) => resolve(j?.jobId), reject)));
        });
        expect(await later).toBe('j');
      });

      it('runs onCommitting listeners inside the change\'s transaction: their writes commit with it, their throw undoes it', async () => {
        const off = stores.onCommitting('round-committed', async (e, tx) => {
          await tx.ops.appendAudit({ actor: 'relay', action: 'round.accept', jobId: e.jobId, detail: { version: e.version } }, e.at);
        });
        await withPending('t1');
        expect(await stores.relay.commitRound('j', next(1), ['t1'], 900)).toBe(true);
        expect((await stores.ops.listAudit({ limit: 10 })).map((a) => a.action)).toEqual(['round.accept']);
        off();
        stores.onCommitting('round-committed', () => { throw new Error('audit unavailable'); });
        await expect(stores.relay.commitRound('j', next(2), [], 901)).rejects.toThrow('audit unavailable');
        expect((await stores.relay.getJob('j'))!.version).toBe(1);
        expect(await stores.ops.countAudit()).toBe(1);
      });

      it('keeps a change when an after-commit listener fails, and stops calling a listener once unsubscribed', async () => {
        const got: string[] = [];
        stores.on('job-created', () => { throw new Error('listener bug'); });
        const off = stores.on('job-created', (e) => { got.push(e.job.jobId); });
        await stores.relay.createJob('a', spec, 'running', initial, 1);
        off();
        await stores.relay.createJob('b', spec, 'running', initial, 2);
        expect((await stores.relay.listJobs()).length).toBe(2);
        expect(got).toEqual(['a']);
      });

      it('refuses in storage\'s own errors, which carry no HTTP status', async () => {
        const e = await stores.relay.setJobStatus('ghost', 'running', 1).catch((x: unknown) => x);
        expect(e).toBeInstanceOf(StoreError);
        expect('statusCode' in (e as object)).toBe(false);
        expect(new ConflictError('x')).toBeInstanceOf(StoreError);
      });
    });

    describe('operator state', () => {
      it('stores a submitted job\'s ownership and dataset, reads shards, held-out split and their size', async () => {
        await stores.relay.createJob('j', spec, 'pending', initial, 1);
        await stores.ops.insertOpsJob({ jobId: 'j', ownerTokenId: 'tok', ownerName: 'ann', maxLossRise: 0.2, tokenizer: null, datasetKind: 'labelled', submittedAt: 1 },
          [new Uint8Array([1, 2]), new Uint8Array([3])], new Uint8Array([9, 9, 9]));
        expect(await stores.ops.getOpsJob('j')).toMatchObject({ ownerTokenId: 'tok', maxLossRise: 0.2 });
        const s = (await stores.ops.loadShards('j'))!;
        expect(s.shards.map((b) => [...b])).toEqual([[1, 2], [3]]);
        expect([...(await stores.ops.loadHeldOut('j'))!]).toEqual([9, 9, 9]);
        expect(await stores.ops.shardBytes('j')).toBe(6);
        expect(await stores.ops.pendingJobsOf('tok')).toEqual(['j']);
        await stores.relay.setJobStatus('j', 'running', 2);
        expect(await stores.ops.pendingJobsOf('tok')).toEqual([]);
        expect(await stores.ops.loadShards('other')).toBeUndefined();
      });

      it('finds a live token by its secret hash, never a revoked one', async () => {
        await stores.ops.insertToken({ id: 'tok_1', secretHash: 'sh', role: 'researcher', name: 'ann' }, 5);
        expect(await stores.ops.findToken('sh')).toEqual({ id: 'tok_1', role: 'researcher', name: 'ann' });
        expect(await stores.ops.revokeToken('tok_1', 6)).toBe(true);
        expect(await stores.ops.revokeToken('tok_1', 7)).toBe(false);
        expect(await stores.ops.findToken('sh')).toBeUndefined();
        expect(await stores.ops.listTokens()).toEqual([{ id: 'tok_1', role: 'researcher', name: 'ann', createdAt: 5, revokedAt: 6 }]);
      });

      it('chains audit entries (each names the previous hash), pages them, filters by job and counts guardrail rollbacks', async () => {
        const a = await stores.ops.appendAudit({ actor: 'x', action: 'job.approve', jobId: 'j' }, 10);
        const b = await stores.ops.appendAudit({ actor: 'guardrail', action: 'job.guardrail', jobId: 'j', detail: { decision: 'rollback', toVersion: 3 } }, 20);
        await stores.ops.appendAudit({ actor: 'x', action: 'token.create', detail: {} }, 30);
        expect(b.seq).toBe(a.seq + 1);
        expect(b.prevHash).toBe(a.hash);
        expect((await stores.ops.listAudit({ afterSeq: a.seq, limit: 1 })).map((e) => e.seq)).toEqual([b.seq]);
        expect((await stores.ops.listAudit({ jobId: 'j', limit: 10 })).length).toBe(2);
        expect((await stores.ops.auditRecords(0, 10)).map((r) => r.hash)).toEqual((await stores.ops.listAudit({ limit: 10 })).map((e) => e.hash));
        expect(await stores.ops.guardrailRollbacksTo('j', 3, 15)).toBe(1);
        expect(await stores.ops.guardrailRollbacksTo('j', 3, 25)).toBe(0);
        expect(await stores.ops.countAudit()).toBe(3);
      });
    });

    describe('defence state', () => {
      it('keeps the first public key of a volunteer, reputation records, and each proof-of-work challenge usable once', async () => {
        await stores.defence.putPublicKey('v1', 'k1', 1);
        await stores.defence.putPublicKey('v1', 'k2', 2);
        expect(await stores.defence.publicKey('v1')).toBe('k1');
        expect(await stores.defence.reputation('v1')).toBeUndefined();
        await stores.defence.putReputation('v1', { state: 'trusted', cleanStreak: 3, strikes: 1 }, 3);
        expect(await stores.defence.reputation('v1')).toEqual({ state: 'trusted', cleanStreak: 3, strikes: 1 });
        const uses = await Promise.all([1, 2, 3].map(() => stores.defence.usePowChallenge('c', 100, 1)));
        expect(uses.filter(Boolean).length).toBe(1);
      });

      it('gives an open spot check to exactly one other volunteer, on another network, and keeps the group\'s payloads', async () => {
        await stores.defence.addReplica({ taskId: 'a', jobId: 'j', groupId: 'a', volunteerId: 'v1', baseVersion: 2, shard: 1, seed: 5, open: true }, 'net1', 1);
        expect(await stores.defence.takeOpenReplica('j', 'v1', 0)).toBeUndefined(); // not to its own volunteer
        expect(await stores.defence.takeOpenReplica('j', 'v2', 0, 'net1')).toBeUndefined(); // not on its network
        const takes = await Promise.all(['v2', 'v3'].map((v) => stores.defence.takeOpenReplica('j', v, 0, 'net2')));
        expect(takes.filter(Boolean).map((r) => r!.taskId)).toEqual(['a']);
        await stores.defence.addReplica({ taskId: 'b', jobId: 'j', groupId: 'a', volunteerId: 'v2', baseVersion: 2, shard: 1, seed: 5, open: false }, 'net2', 2);
        await stores.defence.setReplicaPayload('b', new Uint8Array([4, 2]));
        expect((await stores.defence.group('a')).map((r) => [r.taskId, r.payload && [...r.payload]])).toEqual([['a', null], ['b', [4, 2]]]);
        expect((await stores.defence.getReplica('b'))!.groupId).toBe('a');
      });

      it('stores usefulness scores (NaN kept as NaN) and sums them per volunteer', async () => {
        await stores.defence.putUsefulness({ taskId: 't1', jobId: 'j', volunteerId: 'v1', baseVersion: 0, before: 2, after: 1, drop: 1, refused: false, at: 1 });
        await stores.defence.putUsefulness({ taskId: 't2', jobId: 'j', volunteerId: 'v1', baseVersion: 0, before: NaN, after: NaN, drop: NaN, refused: true, at: 2 });
        expect((await stores.defence.getUsefulness('t2'))!.drop).toBeNaN();
        expect((await stores.defence.usefulnessByVolunteer('j')).get('v1')).toEqual({ scored: 2, meanDrop: 1, notUseful: 1 });
      });

      it('takes rate-limit tokens atomically: a burst of concurrent takes spends exactly the capacity, then refills with time', async () => {
        const limit = { capacity: 5, refillPerSecond: 2 };
        const burst = await Promise.all(Array.from({ length: 9 }, () => stores.defence.takeTokens('tasks:a', limit, 10_000)));
        expect(burst.filter((d) => d.ok).length).toBe(5);
        // empty: one token comes back in 0.5 s, so the refusal says to come back in 1 s (whole seconds)
        expect(burst.find((d) => !d.ok)).toEqual({ ok: false, retryAfterSeconds: 1 });
        expect((await stores.defence.takeTokens('tasks:b', limit, 10_000)).ok).toBe(true); // another bucket is its own
        expect((await stores.defence.takeTokens('tasks:a', limit, 10_400)).ok).toBe(false); // 0.8 tokens back
        expect((await stores.defence.takeTokens('tasks:a', limit, 10_500)).ok).toBe(true);
        expect((await stores.defence.takeTokens('tasks:a', limit, 10_500)).ok).toBe(false);
        // a clock that goes back (another relay's, a little behind) refills nothing and takes nothing extra
        expect((await stores.defence.takeTokens('tasks:a', limit, 9_000)).ok).toBe(false);
        // long idle: full again, never more than the capacity
        const later = await Promise.all(Array.from({ length: 7 }, () => stores.defence.takeTokens('tasks:a', limit, 100_000)));
        expect(later.filter((d) => d.ok).length).toBe(5);
        // pruning idle buckets forgets only what is full again anyway
        await stores.defence.pruneShortLived(200_000, 150_000);
        expect((await Promise.all(Array.from({ length: 6 }, () => stores.defence.takeTokens('tasks:a', limit, 200_000)))).filter((d) => d.ok).length).toBe(5);
      });

      it('lets a signed request through once within its window, whichever caller asks first', async () => {
        const uses = await Promise.all([1, 2, 3].map(() => stores.defence.useRequestSignature('sig-1', 5_000, 1_000)));
        expect(uses.filter(Boolean).length).toBe(1);
        expect(await stores.defence.useRequestSignature('sig-1', 6_000, 4_999)).toBe(false);
        expect(await stores.defence.useRequestSignature('sig-2', 6_000, 4_999)).toBe(true);
        await stores.defence.pruneShortLived(5_500, 0);
        expect(await stores.defence.useRequestSignature('sig-2', 7_000, 5_500)).toBe(false); // its window runs to 6 000
        expect(await stores.defence.useRequestSignature('sig-1', 9_000, 5_500)).toBe(true); // its window ended: forgotten
      });
    });
  });
}
