// Jobs that finish, against a real relay over HTTP with real SQLite: a samples budget moves the default
// job to done and releases its best version (not its last); a done job refuses uploads and its leases end;
// an operator extends a done job and it resumes from the released checkpoint; volunteer loops move on to
// the next running job and then wait, holding nothing; and the seeded augmentation a task carries gives
// the volunteer loop and the CPU reference the same batches.
import { afterEach, describe, expect, it } from 'vitest';
import { dataset } from '../../server/data/datasets.ts';
import { defaultJobSpec } from '../../server/default-job.ts';
import { createToken } from '../../server/ops/tokens.ts';
import { decodeTaskData, taskBatch } from '../../shared/data/task-data.ts';
import type { Finish, Hyperparameters, JobInfo, Task } from '../../shared/protocol/messages.ts';
import { createCpuTrainer } from '../../shared/train/cpu.ts';
import { rng } from '../../shared/util/rng.ts';
import { runVolunteer, type VolunteerEvent } from '../../shared/volunteer/loop.ts';
import { memoryLoopStore } from '../../shared/volunteer/store.ts';
import { honestDelta, startRelay, type TestRelay } from '../helpers/relay.ts';
import { get, leaseFor, post, registerVolunteer, until, uploadFor } from '../ops/helpers.ts';

let relay: TestRelay | undefined;
afterEach(async () => { await relay?.stop(); relay = undefined; });

/** A relay whose default job closes a round per update, without spot checks, and an operator token. */
async function start(h: Partial<Hyperparameters>): Promise<{ relay: TestRelay; operator: string }> {
  relay = await startRelay({ defaultJob: { updatesPerRound: 1, quorum: 1, ...h }, defence: { replication: { baseRate: 0 } } });
  return { relay, operator: createToken(relay.app.db, { role: 'operator', name: 'olga', actor: 'test:data-dir' }).token };
}

const trainedDelta = (r: TestRelay, task: Task): Promise<Float32Array> => honestDelta(r.url, task);

const noise = (n: number, seed: number): Float32Array => { const r = rng(seed); return Float32Array.from({ length: n }, () => 0.05 * r.normal()); };
/** A fifth of a step uphill: with no outer momentum (the jobs below) a version surely worse than its base,
 * yet well inside the norm bound and the guardrail's 1-nat allowance (random noise big enough to hurt is
 * refused by the one or rolled back by the other). */
const uphill = async (r: TestRelay, t: Task): Promise<Float32Array> => Float32Array.from(await trainedDelta(r, t), (x) => -0.2 * x);
const job = async (url: string, jobId = 'mnist-mlp') => (await get(url, `/api/jobs/${jobId}`)).body as JobInfo;

/** Leases and uploads one update as `volunteerId`, then waits for the round it closes. */
async function oneRound(r: TestRelay, volunteerId: string, delta: (t: Task) => Promise<Float32Array>): Promise<void> {
  const before = r.app.store.getJob('mnist-mlp')!.version;
  const lease = await leaseFor('mnist-mlp', volunteerId);
  expect(lease.status).toBe(200);
  const up = await uploadFor(r.url, lease.body as Task, volunteerId, await delta(lease.body as Task));
  expect(up.status).toBe(200);
  await until(async () => r.app.store.getJob('mnist-mlp')!.version, (v) => v > before);
  // and its evaluation (it lands from the worker pool), unless the round ended the job
  await until(async () => r.app.store.getJob('mnist-mlp')!, (j) => j.status === 'done' || r.app.store.listEvals('mnist-mlp').some((e) => e.version === j.version));
}

describe('a job that finishes', () => {
  it('reaches done on a samples budget and releases its best version, not its last', async () => {
    // 3 updates of 20 steps × 32 samples: the third round spends the budget
    const { relay: r } = await start({ until: { samples: 3 * 640 }, outerMomentum: 0 });
    const v = await registerVolunteer(r.url);
    await oneRound(r, v, (t) => trainedDelta(r, t)); // v1: trained, better than v0
    await oneRound(r, v, (t) => uphill(r, t)); // v2, v3: uphill, worse
    expect((await job(r.url)).status).toBe('running');
    await oneRound(r, v, (t) => uphill(r, t));
    const info = await until(() => job(r.url), (j) => j.status === 'done');
    // the budget holds at the round, before the last version's evaluation lands: the released version is
    // the best of those evaluated by then (0–2), never the last
    const evals = await until(async () => r.app.store.listEvals('mnist-mlp'), (es) => es.length === 4);
    expect(evals.map((e) => e.version)).toEqual([0, 1, 2, 3]);
    const best = evals.slice(0, 3).reduce((a, b) => (b.loss < a.loss ? b : a));
    const f = info.finish as Finish;
    expect(f).toMatchObject({ rule: 'samples', releasedVersion: best.version, loss: best.loss, releasedHash: r.app.store.versionHash('mnist-mlp', best.version) });
    expect(f.releasedVersion).not.toBe(info.version);
    expect(best.version).toBeGreaterThan(0);
    expect(f.reason).toMatch(/sample budget reached: 1920 samples/);
    // the audit log says why, and what was released
    const audit = (await get(r.url, '/api/ops/audit?jobId=mnist-mlp', createToken(r.app.db, { role: 'researcher', name: 'r', actor: 't' }).token)).body.entries;
    expect(audit.at(-1)).toMatchObject({ actor: 'relay', action: 'job.finish', detail: { rule: 'samples', releasedVersion: best.version, from: 'running', to: 'done' } });
    // volunteers see no running job
    expect((await get(r.url, '/api/jobs')).body.jobs).toEqual([]);
    // the released version downloads as safetensors beside ONNX
    const st = await fetch(`${r.url}/api/ops/jobs/mnist-mlp/versions/${f.releasedVersion}/model.safetensors`);
    expect(st.status).toBe(200);
    expect(st.headers.get('x-tabtrain-hash')).toBe(f.releasedHash);
    const bytes = new Uint8Array(await st.arrayBuffer());
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    const params = new Float32Array(bytes.slice(8 + n).buffer);
    expect(params).toEqual(r.app.store.getVersion('mnist-mlp', f.releasedVersion)!.params);
    expect((await get(r.url, '/api/ops/jobs/mnist-mlp/versions/99/model.safetensors')).body.error.code).toBe('TT_ERR_UNKNOWN_VERSION');
  });

  it('refuses the uploads of a done job with TT_ERR_JOB_NOT_RUNNING and ends its leases', async () => {
    const { relay: r, operator } = await start({ updatesPerRound: 2 });
    const v = await registerVolunteer(r.url);
    const w = await registerVolunteer(r.url);
    const task = (await leaseFor('mnist-mlp', v)).body as Task;
    expect(r.app.store.countLiveTasks('mnist-mlp', Date.now())).toBe(1);
    const fin = await post(r.url, '/api/ops/jobs/mnist-mlp/finish', operator, { reason: 'enough for today' });
    expect(fin).toMatchObject({ status: 200, body: { status: 'done', finish: { rule: 'operator', reason: 'enough for today', releasedVersion: 0 } } });
    expect(r.app.store.getTask(task.taskId)!.state).toBe('rejected');
    expect(r.app.store.countLiveTasks('mnist-mlp', Date.now())).toBe(0);
    const up = await uploadFor(r.url, task, v, noise(task.paramCount, 3));
    expect(up.status).toBe(409);
    expect(up.body.error.code).toBe('TT_ERR_JOB_NOT_RUNNING');
    expect(up.body.error.message).toMatch(/is done \(enough for today\)/);
    expect(r.app.store.listUpdates('mnist-mlp')).toEqual([]);
    const lease = await leaseFor('mnist-mlp', w);
    expect(lease).toMatchObject({ status: 409, body: { error: { code: 'TT_ERR_JOB_NOT_RUNNING' } } });
    // finishing twice is a bad transition, named
    expect((await post(r.url, '/api/ops/jobs/mnist-mlp/finish', operator, {})).body.error.code).toBe('TT_ERR_BAD_TRANSITION');
  });

  it('extends a done job: it resumes from the released version\'s checkpoint under its new until, audited', async () => {
    const { relay: r, operator } = await start({ until: { samples: 2 * 640 }, outerMomentum: 0 });
    const v = await registerVolunteer(r.url);
    await oneRound(r, v, (t) => trainedDelta(r, t));
    await oneRound(r, v, (t) => uphill(r, t));
    const done = await until(() => job(r.url), (j) => j.status === 'done');
    // the best evaluated version when the budget held: 1, or 2 when a fifth of a step uphill on one shard
    // happened to help the held-out loss
    const released = done.finish!.releasedVersion;
    expect([1, 2]).toContain(released);
    const last = done.version;
    const checkpoint = r.app.store.getVersion('mnist-mlp', released)!;
    // bad input is named; a budget already spent is refused
    expect((await post(r.url, '/api/ops/jobs/mnist-mlp/extend', operator, { until: { plateau: { evals: 0, tolerance: 0 } } })).body.error.message).toMatch(/^request is invalid: until\.plateau\.evals: /);
    expect((await post(r.url, '/api/ops/jobs/mnist-mlp/extend', operator, { until: { samples: 640 } })).body.error.message).toMatch(new RegExp(`until\\.samples: already holds at the released version ${released}`));
    expect((await post(r.url, '/api/ops/jobs/mnist-mlp/extend', undefined, { until: { versions: 5 } })).status).toBe(401);
    const ext = await post(r.url, '/api/ops/jobs/mnist-mlp/extend', operator, { until: { versions: released + 2 } });
    expect(ext).toMatchObject({ status: 200, body: { status: 'running', version: released, until: { versions: released + 2 } } });
    const info = await job(r.url);
    expect(info).toMatchObject({ status: 'running', version: released, hyperparameters: { until: { versions: released + 2 } } });
    expect(info.finish).toBeUndefined();
    const resumed = r.app.store.getVersion('mnist-mlp', released)!;
    expect(resumed.hash).toBe(checkpoint.hash);
    expect(resumed.momentum).toEqual(checkpoint.momentum);
    expect(r.app.store.listVersions('mnist-mlp')).toEqual(Array.from({ length: released + 1 }, (_, i) => i));
    // the next task builds on the released version, and the new budget ends it again
    const lease = await leaseFor('mnist-mlp', v);
    expect((lease.body as Task).baseVersion).toBe(released);
    expect((await uploadFor(r.url, lease.body as Task, v, await trainedDelta(r, lease.body as Task))).status).toBe(200);
    await until(async () => r.app.store.getJob('mnist-mlp')!.version, (x) => x === released + 1);
    await oneRound(r, v, (t) => trainedDelta(r, t));
    expect((await until(() => job(r.url), (j) => j.status === 'done')).finish!.rule).toBe('versions');
    const audit = (await get(r.url, '/api/ops/audit?jobId=mnist-mlp', operator)).body.entries.map((e: { action: string }) => e.action);
    expect(audit.filter((a: string) => a.startsWith('job.'))).toEqual(['job.finish', 'job.extend', 'job.finish']);
    const extend = (await get(r.url, '/api/ops/audit?jobId=mnist-mlp', operator)).body.entries.find((e: { action: string }) => e.action === 'job.extend');
    expect(extend.detail).toMatchObject({ from: 'done', to: 'running', untilBefore: { samples: 1280 }, until: { versions: released + 2 }, resumedFrom: released, droppedVersions: last - released });
    expect((await get(r.url, '/api/ops/audit/verify', operator)).body.ok).toBe(true);
  });
});

describe('the default job at start', () => {
  it('is created afresh when every job is done and renewing is on (tabtrain start), and not otherwise', async () => {
    const { relay: r, operator } = await start({});
    const dataDir = r.dataDir;
    expect((await post(r.url, '/api/ops/jobs/mnist-mlp/finish', operator, {})).status).toBe(200);
    await r.app.close();
    relay = await startRelay({ dataDir, renewDefaultJob: false, keepData: true });
    expect(relay.app.store.listJobs().map((j) => j.jobId)).toEqual(['mnist-mlp']);
    await relay.app.close();
    relay = await startRelay({ dataDir, renewDefaultJob: true });
    expect(relay.app.store.listJobs().map((j) => [j.jobId, j.status])).toEqual([['mnist-mlp', 'done'], ['mnist-mlp-2', 'running']]);
    expect(relay.app.store.getJob('mnist-mlp-2')!.hyperparameters.until).toEqual({ versions: 1000, plateau: { evals: 20, tolerance: 0.002 } });
    expect((await get(relay.url, '/api/jobs')).body.jobs.map((j: { jobId: string }) => j.jobId)).toEqual(['mnist-mlp-2']);
  });
});

describe('volunteers when their job is done', () => {
  it('move on to the next running job, then wait for one without holding a trainer', async () => {
    const { relay: r } = await start({ until: { versions: 2 } });
    r.app.scheduler.createJob('mnist-b', defaultJobSpec({ updatesPerRound: 1, quorum: 1, until: { versions: 2 } }), 'running');
    const events: VolunteerEvent[] = [];
    const abort = new AbortController();
    let trainers = 0, destroyed = 0;
    const loop = runVolunteer({
      server: r.url, fetch: (u, i) => fetch(u, i), store: memoryLoopStore(), signal: abort.signal, retry: { baseMs: 50, maxMs: 500, attempts: 20 },
      createTrainer: (m, o) => { trainers++; const t = createCpuTrainer(m, o); return { ...t, backend: t.backend, model: t.model, load: (p) => t.load(p), step: (b) => t.step(b), losses: () => t.losses(), delta: () => t.delta(), destroy: () => { destroyed++; t.destroy(); } }; },
      onEvent: (e) => events.push(e),
    });
    const waiting = () => events.some((e) => e.type === 'state' && e.state === 'waiting' && /^no running job/.test(e.detail ?? ''));
    await until(async () => waiting(), (x) => x, 100);
    abort.abort();
    await loop;
    expect(r.app.store.getJob('mnist-mlp')!.status).toBe('done');
    expect(r.app.store.getJob('mnist-b')!.status).toBe('done');
    const jobsTrained = [...new Set(events.flatMap((e) => (e.type === 'task' ? [e.task.jobId] : [])))];
    expect(jobsTrained).toEqual(['mnist-mlp', 'mnist-b']);
    const ended = events.filter((e) => e.type === 'job-ended').map((e) => (e as { jobId: string }).jobId);
    expect(ended).toEqual(['mnist-mlp', 'mnist-b']);
    expect(events.filter((e) => e.type === 'error')).toEqual([]);
    // the trainer was let go before the loop sat waiting
    expect(trainers).toBeGreaterThan(0);
    expect(destroyed).toBe(trainers);
  });
});

describe('augmentation through the volunteer loop', () => {
  it('trains on the batches the CPU reference draws for the same task (seeded shifts), not the plain ones', async () => {
    const { relay: r } = await start({});
    const events: VolunteerEvent[] = [];
    await runVolunteer({
      server: r.url, fetch: (u, i) => fetch(u, i), createTrainer: createCpuTrainer, store: memoryLoopStore(),
      signal: new AbortController().signal, maxTasks: 1, onEvent: (e) => events.push(e),
    });
    const task = events.flatMap((e) => (e.type === 'task' ? [e.task] : []))[0];
    const trained = events.find((e) => e.type === 'trained') as { losses: number[] } | undefined;
    expect(task?.augment).toEqual({ shift: 2 });
    const base = r.app.store.getVersion('mnist-mlp', task!.baseVersion)!.params;
    const data = decodeTaskData(dataset('mnist').shardBytes[task!.shard]);
    const lossesWith = async (augment: Task['augment']) => {
      const t = createCpuTrainer(task!.model, { batchSize: task!.batchSize, adamw: task!.adamw, clipNorm: task!.clipNorm });
      await t.load(base);
      for (let s = 0; s < task!.steps; s++) await t.step(taskBatch(data, task!.model, task!.seed, s, task!.batchSize, augment));
      return t.losses();
    };
    expect(trained!.losses).toEqual(await lossesWith(task!.augment));
    expect(trained!.losses).not.toEqual(await lossesWith(undefined));
  });
});
