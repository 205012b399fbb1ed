// The volunteer loop against a real relay: it resumes a task saved before a "reload", uploads it,
// keeps the error-feedback residual and the parameters in its store, and reports bytes sent; it leases
// and fetches the next task while one trains and drops a lease taken ahead that ran out; and the Node
// volunteer keeps its identity (a 0600 key file) and its task across a restart.
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openFileStore } from '../../server/volunteer/file-store.ts';
import { keyFilePath } from '../../server/volunteer/key-file.ts';
import { runNodeVolunteer } from '../../server/volunteer/run.ts';
import { prefetchDue } from '../../shared/volunteer/pipeline.ts';
import { Meter } from '../../shared/volunteer/meter.ts';
import { kvLoopStore } from '../../shared/volunteer/kv-store.ts';
import { Throttle } from '../../shared/volunteer/throttle.ts';
import { createCpuTrainer } from '../../shared/train/cpu.ts';
import type { Task } from '../../shared/protocol/messages.ts';
import { runVolunteer, type VolunteerEvent } from '../../shared/volunteer/loop.ts';
import { memoryLoopStore } from '../../shared/volunteer/store.ts';
import { registerSigned } from '../helpers/identity.ts';
import { startRelay, testClock, waitFor, type TestRelay } from '../helpers/relay.ts';

describe('volunteer loop', () => {
  let relay: TestRelay;
  // no spot checks here: a spot-checked task is sent without error feedback, and this test checks the residual
  beforeAll(async () => { relay = await startRelay({ defence: { replication: { baseRate: 0 } } }); });
  afterAll(async () => { await relay.stop(); });

  it('resumes a saved task, uploads it, and keeps residual and params in its store', async () => {
    const me = await registerSigned(relay.url);
    const { volunteerId, identity } = me;
    const saved = await (await me.askForTask()).json() as Task;
    // the state a reloaded tab finds in its store: its keys, its id, its task
    const store = memoryLoopStore();
    await store.putKeys!(relay.url, identity.keys);
    await store.setVolunteerId(relay.url, volunteerId);
    await store.putTask(saved);
    const events: VolunteerEvent[] = [];
    await runVolunteer({
      server: relay.url, fetch: (u, i) => fetch(u, i), createTrainer: createCpuTrainer, store,
      signal: new AbortController().signal, onEvent: (e) => events.push(e), maxTasks: 1,
    });
    expect(events.find((e) => e.type === 'resumed')).toEqual({ type: 'resumed', taskId: saved.taskId });
    const up = events.find((e) => e.type === 'uploaded');
    expect(up).toMatchObject({ type: 'uploaded', taskId: saved.taskId, ack: { accepted: true, duplicate: false } });
    if (up?.type === 'uploaded') expect(up.denseBytes / up.bytes).toBeGreaterThan(3.5);
    expect(events.filter((e) => e.type === 'step')).toHaveLength(saved.steps);
    const states = events.filter((e) => e.type === 'state').map((e) => (e as { state: string }).state);
    expect(states).toEqual(expect.arrayContaining(['fetching', 'training', 'uploading', 'stopped']));
    // int8 rounding leaves a small, non-zero residual for the next update
    const residual = (await store.getResidual('mnist-mlp'))!;
    expect(residual).toHaveLength(saved.paramCount);
    expect(residual.some((v) => v !== 0)).toBe(true);
    expect((await store.getParams(saved.versionHash))?.length).toBe(saved.paramCount);
    expect(await store.getTask()).toBeUndefined();
    expect(relay.app.store.getTask(saved.taskId)!.state).toBe('accepted');
  });

  it('leases and fetches the next task while one trains, and uploads behind it, in task order', async () => {
    const log: string[] = [];
    const f = async (u: string, i?: RequestInit) => {
      const what = `${i?.method ?? 'GET'} ${new URL(u).pathname}`;
      log.push(`> ${what}`);
      const res = await fetch(u, i);
      log.push(`< ${what}`);
      return res;
    };
    const events: VolunteerEvent[] = [];
    await runVolunteer({
      server: relay.url, fetch: f, createTrainer: createCpuTrainer, store: memoryLoopStore(), jobId: 'mnist-mlp',
      signal: new AbortController().signal, onEvent: (e) => events.push(e), maxTasks: 3,
    });
    const leases = log.map((l, i) => [l, i] as const).filter(([l]) => l === '> POST /api/jobs/mnist-mlp/tasks').map(([, i]) => i);
    const uploads = log.map((l, i) => [l, i] as const).filter(([l]) => /^> POST \/api\/tasks\/.*\/update$/.test(l)).map(([, i]) => i);
    // three tasks, three leases: nothing leased ahead is wasted at the end of a bounded run
    expect(leases).toHaveLength(3);
    expect(uploads).toHaveLength(3);
    // task 2 was leased before task 1's update went up (that is, while task 1 trained), and task 3 before task 2's
    expect(leases[1]).toBeLessThan(uploads[0]);
    expect(leases[2]).toBeLessThan(uploads[1]);
    const trained = events.filter((e) => e.type === 'trained').map((e) => (e as { taskId: string }).taskId);
    const sent = events.filter((e) => e.type === 'uploaded');
    // updates go up in the order their tasks trained (the residual is folded task after task), all accepted
    expect(sent.map((e) => (e as { taskId: string }).taskId)).toEqual(trained);
    for (const e of sent) expect(e).toMatchObject({ ack: { accepted: true } });
    expect(events.filter((e) => e.type === 'dropped' || e.type === 'error')).toEqual([]);
  });

  it('a lease taken ahead that runs out while the volunteer is paused is dropped, and a fresh task is trained', async () => {
    // one clock for the relay and the volunteer, moved past both leases while the volunteer is paused
    const clock = testClock();
    const short = await startRelay({ defence: { replication: { baseRate: 0 } }, defaultJob: { leaseMs: 30_000, steps: 10 }, now: clock.now });
    try {
      const throttle = new Throttle();
      const meter = new Meter({ throttle });
      const leased: { taskId: string; deadline: number }[] = [];
      const f = async (u: string, i?: RequestInit) => {
        const res = await fetch(u, i);
        if (i?.method === 'POST' && new URL(u).pathname.endsWith('/tasks') && res.status === 200) leased.push(await res.clone().json() as Task);
        return res;
      };
      const events: VolunteerEvent[] = [];
      let paused = false;
      // unbounded (a bounded run takes no lease ahead for its last task); stopped at the first upload
      const stop = new AbortController();
      const run = runVolunteer({
        server: short.url, fetch: f, store: memoryLoopStore(), jobId: 'mnist-mlp', signal: stop.signal, now: clock.now,
        createTrainer: (m, o) => meter.wrapTrainer(createCpuTrainer(m, o)),
        onEvent: (e) => {
          events.push(e);
          if (e.type === 'uploaded') stop.abort();
          // pause near the end of the first task: the next one has been leased ahead by then
          if (!paused && e.type === 'step' && e.step === e.steps - 2) { paused = true; throttle.setPaused(true); }
        },
      });
      await waitFor(async () => leased.length, (n) => paused && n >= 2, 50);
      // wait out both leases (the one training and the one taken ahead), then carry on
      clock.advance(Math.max(0, leased[1].deadline - clock.now()) + 200);
      throttle.setPaused(false);
      await run;
      const dropped = events.filter((e) => e.type === 'dropped');
      expect(dropped).toEqual([
        expect.objectContaining({ taskId: leased[0].taskId, code: 'TT_ERR_LEASE_EXPIRED' }),
        expect.objectContaining({ taskId: leased[1].taskId, code: 'TT_ERR_LEASE_EXPIRED' }),
      ]);
      // the ahead task was never trained; a third, fresh lease was, and its update was accepted
      expect(events.filter((e) => e.type === 'trained').map((e) => (e as { taskId: string }).taskId).slice(0, 2)).toEqual([leased[0].taskId, leased[2].taskId]);
      expect(events.find((e) => e.type === 'uploaded')).toMatchObject({ taskId: leased[2].taskId, ack: { accepted: true } });
    } finally {
      await short.stop();
    }
  });

  it('prefetches halfway through the first task, then just early enough for the measured fetch time', () => {
    expect(prefetchDue(20, 9, 900, undefined)).toBe(false);
    expect(prefetchDue(20, 10, 1000, undefined)).toBe(true);
    // 100 ms steps, prefetch took 150 ms: start when 2·150 + 100 ms of training are left (4 steps)
    expect(prefetchDue(20, 15, 1500, 150)).toBe(false);
    expect(prefetchDue(20, 16, 1600, 150)).toBe(true);
    // a slow network: start at once
    expect(prefetchDue(20, 1, 100, 5_000)).toBe(true);
    expect(prefetchDue(1, 1, 100, undefined)).toBe(true);
  });

  it('a restarted Node volunteer keeps its volunteer id (key in a 0600 file) and finishes its saved task', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'tabtrain-node-restart-'));
    try {
      const first: VolunteerEvent[] = [];
      const stop = new AbortController();
      await runNodeVolunteer({
        server: relay.url, jobId: 'mnist-mlp', stateDir, cpu: true, quiet: true, signal: stop.signal,
        // Ctrl-C in the middle of the first task
        onEvent: (e) => { first.push(e); if (e.type === 'step' && e.step === 2) stop.abort(); },
      });
      const registered = first.find((e) => e.type === 'registered') as { volunteerId: string } | undefined;
      const task = first.find((e) => e.type === 'task') as { task: Task } | undefined;
      expect(registered?.volunteerId).toMatch(/^v_/);
      expect(first.some((e) => e.type === 'uploaded')).toBe(false);
      expect(statSync(keyFilePath(stateDir, relay.url)).mode & 0o777).toBe(0o600);
      const saved = kvLoopStore(await openFileStore(stateDir), 0);
      expect((await saved.getTask())?.taskId).toBe(task!.task.taskId);

      const second: VolunteerEvent[] = [];
      const { stats } = await runNodeVolunteer({
        server: relay.url, jobId: 'mnist-mlp', stateDir, cpu: true, quiet: true, signal: new AbortController().signal, maxTasks: 1,
        onEvent: (e) => second.push(e),
      });
      // same key, same id: no new registration, and the saved task's lease (bound to that id) is honoured
      expect(second.some((e) => e.type === 'registered')).toBe(false);
      expect(await saved.getVolunteerId(relay.url)).toBe(registered!.volunteerId);
      expect(second.find((e) => e.type === 'resumed')).toEqual({ type: 'resumed', taskId: task!.task.taskId });
      expect(second.find((e) => e.type === 'uploaded')).toMatchObject({ taskId: task!.task.taskId, ack: { accepted: true } });
      expect(stats.updatesAccepted).toBe(1);
      expect(relay.app.store.getTask(task!.task.taskId)!.state).toBe('accepted');
    } finally {
      rmSync(stateDir, { recursive: true, force: true });
    }
  });
});
