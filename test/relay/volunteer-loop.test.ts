// The volunteer loop against a real relay: it resumes a task saved before a "reload", uploads it,
// keeps the error-feedback residual and the parameters in its store, and reports bytes sent.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCpuTrainer } from '../../shared/train/cpu.ts';
import type { Task } from '../../shared/protocol/messages.ts';
import { runVolunteer, type VolunteerEvent } from '../../shared/volunteer/loop.ts';
import { memoryLoopStore } from '../../shared/volunteer/store.ts';
import { registerSigned } from '../helpers/identity.ts';
import { startRelay, type TestRelay } from '../helpers/relay.ts';

describe('volunteer loop', () => {
  let relay: TestRelay;
  // no spot checks here: a spot-checked task is sent without error feedback, and this test checks the residual
  beforeAll(async () => { relay = await startRelay({ defence: { replication: { baseRate: 0 } } }); });
  afterAll(async () => { await relay.stop(); });

  it('resumes a saved task, uploads it, and keeps residual and params in its store', async () => {
    const post = (path: string, body: unknown) => fetch(relay.url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const { volunteerId, identity } = await registerSigned(relay.url);
    const saved = await (await post('/api/jobs/mnist-mlp/tasks', { volunteerId })).json() as Task;
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
});
