// The relay's clock is injectable (RelayOptions.now): what its timers would do happens when the clock is
// moved and a sweep runs, with no sleeping. Real relay, real SQLite, signed requests over loopback.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Task } from '../../shared/protocol/messages.ts';
import { signTaskRequest } from '../../shared/security/identity.ts';
import { registerSigned, type SignedVolunteer } from '../helpers/identity.ts';
import { startRelay, testClock, type TestRelay } from '../helpers/relay.ts';

describe('the relay reads time from its injected clock', () => {
  const clock = testClock();
  let relay: TestRelay;
  let v: SignedVolunteer;
  beforeAll(async () => {
    // an hour-long lease and a sweep that never fires on its own: only the moved clock can expire anything
    relay = await startRelay({ evaluate: false, sweepMs: 3_600_000, now: clock.now, defaultJob: { leaseMs: 3_600_000, updatesPerRound: 1000, quorum: 1000 },
      defence: { replication: { baseRate: 0 }, limits: { tasksPerIdentity: { capacity: 1, refillPerSecond: 1 / 600 } } } });
    v = await registerSigned(relay.url, 'clocked');
  });
  afterAll(async () => { await relay.stop(); });

  it('a lease expires when the clock passes its deadline and a sweep runs, not before', async () => {
    const before = clock.now();
    const res = await v.askForTask();
    const after = clock.now();
    expect(res.status).toBe(200);
    const task = await res.json() as Task;
    // the relay stamps its answer with the injected clock: a reading taken while the request was in flight
    // (bracketed, so a slow machine cannot fail it)
    const stamped = Number(res.headers.get('x-tabtrain-time'));
    expect(stamped).toBeGreaterThanOrEqual(before);
    expect(stamped).toBeLessThanOrEqual(after);
    await relay.app.scheduler.sweep();
    expect(relay.app.store.getTask(task.taskId)!.state).toBe('issued');
    clock.advance(task.deadline - clock.now() + 1);
    await relay.app.scheduler.sweep();
    expect(relay.app.store.getTask(task.taskId)!.state).toBe('expired');
  });

  it('a rate-limit window refills with the clock: refused now, served once the clock has moved ten minutes', async () => {
    // signed with the relay's time, as the client does (the clock is far ahead of this machine's by now)
    const signedAtRelayTime = async () => {
      const at = clock.now();
      const headers = { 'content-type': 'application/json', 'x-tabtrain-time': String(at), 'x-tabtrain-signature': await signTaskRequest(v.identity, 'mnist-mlp', at) };
      return fetch(`${relay.url}/api/jobs/mnist-mlp/tasks`, { method: 'POST', headers, body: JSON.stringify({ volunteerId: v.volunteerId }) });
    };
    expect((await signedAtRelayTime()).status).toBe(200); // takes the one token
    const refused = await signedAtRelayTime();
    expect(refused.status).toBe(429);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('TT_ERR_RATE_LIMITED');
    clock.advance(600_000);
    expect((await signedAtRelayTime()).status).toBe(200);
  });
});
