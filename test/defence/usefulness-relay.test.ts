// The usefulness score wired into a real relay (loopback HTTP, real SQLite, signed uploads): per job off,
// score or enforce; an honest update lowers the loss on its own seeded batch and is taken, a sign-flipped
// one raises it and, when the job enforces, is refused with 422 TT_ERR_NOT_USEFUL before it is stored.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeUpdate } from '../../shared/codec/index.ts';
import { encodeUpdateFrame } from '../../shared/protocol/frame.ts';
import type { Hyperparameters, Task } from '../../shared/protocol/messages.ts';
import { createCpuTrainer } from '../../shared/train/cpu.ts';
import type { Batch, Trainer, TrainOptions } from '../../shared/train/trainer.ts';
import { runVolunteer, type VolunteerEvent } from '../../shared/volunteer/loop.ts';
import { memoryLoopStore } from '../../shared/volunteer/store.ts';
import type { ModelConfig } from '../../shared/models/config.ts';
import { dataset } from '../../server/data/datasets.ts';
import { defaultJobSpec } from '../../server/default-job.ts';
import { ownBatch } from '../../server/defence/usefulness.ts';
import { registerSigned, type SignedVolunteer } from '../helpers/identity.ts';
import { honestDelta as honestOf, startRelay, type TestRelay } from '../helpers/relay.ts';

type Answer = { status: number; body: any };
const hp: Partial<Hyperparameters> = { updatesPerRound: 1000, quorum: 1000, steps: 5 };

const getJson = async (relay: TestRelay, path: string): Promise<Answer> => {
  const res = await fetch(relay.url + path);
  return { status: res.status, body: await res.json() };
};
const lease = async (v: SignedVolunteer, jobId: string): Promise<Task> => {
  const res = await v.askForTask(jobId);
  expect(res.status).toBe(200);
  return (await res.json()) as Task;
};
const honestDelta = (relay: TestRelay, task: Task): Promise<Float32Array> => honestOf(relay.url, task);
const upload = async (relay: TestRelay, v: SignedVolunteer, task: Task, delta: Float32Array): Promise<Answer> => {
  const frame = encodeUpdateFrame({ lease: task.lease, volunteerId: v.volunteerId, losses: [2.3], samples: task.steps * task.batchSize, computeMs: 5 }, encodeUpdate(delta, task.compression));
  const res = await fetch(`${relay.url}/api/tasks/${task.taskId}/update`, { method: 'POST', body: frame as BodyInit, headers: await v.uploadHeaders(task.taskId, task.lease, frame) });
  return { status: res.status, body: await res.json() };
};
const metric = async (relay: TestRelay, name: string, labels: string): Promise<number> => {
  const text = await (await fetch(`${relay.url}/metrics`)).text();
  const m = new RegExp(`^${name}\\{${labels}\\} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
};
const overviewRow = async (relay: TestRelay, jobId: string, volunteerId: string) =>
  ((await getJson(relay, `/api/ops/jobs/${jobId}/overview`)).body.volunteers as { volunteerId: string }[]).find((v) => v.volunteerId === volunteerId) as Record<string, unknown>;

describe('usefulness score on a real relay', () => {
  let relay: TestRelay;
  let alice: SignedVolunteer, bob: SignedVolunteer;
  beforeAll(async () => {
    // the default job enforces; 'scored' only scores; 'plain' is a job made without the field (off)
    relay = await startRelay({ evaluate: false, defaultJob: { ...hp, usefulness: { mode: 'enforce', minDrop: 0 } }, defence: { replication: { baseRate: 0 } } });
    relay.app.scheduler.createJob('scored', defaultJobSpec({ ...hp, usefulness: { mode: 'score', minDrop: 0 } }), 'running');
    relay.app.scheduler.createJob('plain', defaultJobSpec(hp), 'running');
    alice = await registerSigned(relay.url, 'alice');
    bob = await registerSigned(relay.url, 'bob');
  });
  afterAll(async () => { await relay.stop(); });
  const score = (taskId: string) => relay.app.scheduler.guard.store.getUsefulness(taskId);

  it('enforce: takes an honest update, stores its positive loss drop and shows it in the overview and /metrics', async () => {
    const task = await lease(alice, 'mnist-mlp');
    const r = await upload(relay, alice, task, await honestDelta(relay, task));
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    const s = (await score(task.taskId))!;
    expect(s).toMatchObject({ jobId: 'mnist-mlp', volunteerId: alice.volunteerId, baseVersion: 0, refused: false });
    expect(s.drop).toBeGreaterThan(0.01);
    expect(s.drop).toBeCloseTo(s.before - s.after, 12);
    expect(relay.app.store.getTask(task.taskId)!.state).toBe('accepted');
    expect(await overviewRow(relay, 'mnist-mlp', alice.volunteerId)).toMatchObject({ accepted: 1, scored: 1, notUseful: 0, meanDrop: s.drop });
    expect(await metric(relay, 'tabtrain_update_usefulness_drop_count', 'job="mnist-mlp"')).toBe(1);
    expect(await metric(relay, 'tabtrain_update_usefulness_drop_bucket', 'le="0",job="mnist-mlp"')).toBe(0);
    expect(await metric(relay, 'tabtrain_update_usefulness_seconds_count', 'job="mnist-mlp"')).toBe(1);
  });

  it('enforce: refuses a sign-flipped update with 422 TT_ERR_NOT_USEFUL, stores nothing of it but its score, and strikes nobody', async () => {
    const task = await lease(bob, 'mnist-mlp');
    const flipped = (await honestDelta(relay, task)).map((x) => -x);
    const r = await upload(relay, bob, task, flipped);
    expect(r.status).toBe(422);
    expect(r.body.error.code).toBe('TT_ERR_NOT_USEFUL');
    expect(r.body.error.message).toMatch(/below the job's minimum of 0/);
    expect(relay.app.store.getTask(task.taskId)!.state).toBe('rejected');
    expect(relay.app.store.listUpdates('mnist-mlp').some((u) => u.taskId === task.taskId)).toBe(false);
    const s = (await score(task.taskId))!;
    expect(s.refused).toBe(true);
    expect(s.drop).toBeLessThan(-0.01);
    expect((await relay.app.scheduler.guard.store.reputation(bob.volunteerId)).strikes).toBe(0);
    expect(await metric(relay, 'tabtrain_updates_rejected_total', 'reason="TT_ERR_NOT_USEFUL"')).toBe(1);
    expect(await overviewRow(relay, 'mnist-mlp', bob.volunteerId)).toMatchObject({ accepted: 0, scored: 1, notUseful: 1, meanDrop: s.drop });
    // the lease is spent: the same task cannot be retried with a better update
    expect((await upload(relay, bob, task, flipped.map((x) => -x))).body.error.code).toBe('TT_ERR_LEASE_USED');
  });

  it('score: stores both scores and refuses neither', async () => {
    const good = await lease(alice, 'scored'), bad = await lease(bob, 'scored');
    expect((await upload(relay, alice, good, await honestDelta(relay, good))).status).toBe(200);
    expect((await upload(relay, bob, bad, (await honestDelta(relay, bad)).map((x) => -x))).status).toBe(200);
    expect((await score(good.taskId))).toMatchObject({ refused: false, drop: expect.any(Number) });
    expect((await score(good.taskId))!.drop).toBeGreaterThan(0.01);
    expect((await score(bad.taskId))!.drop).toBeLessThan(-0.01);
    expect((await score(bad.taskId))!.refused).toBe(false);
    expect(relay.app.store.listUpdates('scored')).toHaveLength(2);
  });

  it('off (a job made without the field): takes both as before, scores nothing and adds no overview column', async () => {
    const good = await lease(alice, 'plain'), bad = await lease(bob, 'plain');
    expect((await upload(relay, alice, good, await honestDelta(relay, good))).status).toBe(200);
    expect((await upload(relay, bob, bad, (await honestDelta(relay, bad)).map((x) => -x))).status).toBe(200);
    expect((await score(good.taskId))).toBeUndefined();
    expect((await score(bad.taskId))).toBeUndefined();
    expect(relay.app.store.listUpdates('plain')).toHaveLength(2);
    const row = await overviewRow(relay, 'plain', alice.volunteerId);
    expect(row.accepted).toBe(1);
    expect('meanDrop' in row).toBe(false);
    expect(await metric(relay, 'tabtrain_update_usefulness_drop_count', 'job="plain"')).toBe(0);
  });

  it('the volunteer loop passes an enforced job, and the relay scores the very batch its trainer drew first', async () => {
    // a CPU trainer that remembers the first batch after each load (the batch of inner step 0)
    const firsts: Batch[] = [];
    const createTrainer = (model: ModelConfig, opts: TrainOptions): Trainer => {
      const t = createCpuTrainer(model, opts);
      let fresh = false;
      return {
        ...t,
        load: async (p) => { fresh = true; await t.load(p); },
        step: async (b) => { if (fresh) firsts.push(b); fresh = false; await t.step(b); },
      };
    };
    const events: VolunteerEvent[] = [];
    await runVolunteer({
      server: relay.url, fetch: (u, init) => fetch(u, init), createTrainer, store: memoryLoopStore(), signal: new AbortController().signal,
      jobId: 'mnist-mlp', agent: 'loop', maxTasks: 1, onEvent: (e) => events.push(e),
    });
    const uploaded = events.find((e) => e.type === 'uploaded');
    const trained = events.find((e) => e.type === 'trained');
    expect(events.filter((e) => e.type === 'dropped' || e.type === 'error')).toEqual([]);
    if (uploaded?.type !== 'uploaded' || trained?.type !== 'trained') throw new Error('the volunteer uploaded nothing');
    const task = relay.app.store.getTask(uploaded.taskId)!;
    const job = relay.app.store.getJob('mnist-mlp')!;
    expect(firsts).toHaveLength(1);
    expect(ownBatch(job.model, dataset(job.dataset.name).shardBytes[task.shard], task.seed, job.hyperparameters.batchSize, job.hyperparameters.augment)).toEqual(firsts[0]);
    const s = (await score(task.taskId))!;
    expect(s.refused).toBe(false);
    expect(s.drop).toBeGreaterThan(0);
    // same batch, same base params: the relay's loss before the update is the loss the trainer reported first
    expect(s.before).toBeCloseTo(trained.losses[0], 5);
  });
});
