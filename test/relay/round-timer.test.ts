// The round timer: with fewer than K updates in, a round closes once its timer has run out AND a quorum
// is in, and not before the quorum, however long it waits.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { paramCount, defaultMlp } from '../../shared/models/config.ts';
import { startRelay, testClock, waitFor, type TestRelay } from '../helpers/relay.ts';
import { registerVolunteer, uploadDelta } from '../ops/helpers.ts';

describe('round timer', () => {
  let relay: TestRelay;
  const ROUND_MS = 1500;
  const clock = testClock();
  beforeAll(async () => {
    relay = await startRelay({ evaluate: false, defaultJob: { updatesPerRound: 4, quorum: 2, roundTimeoutMs: ROUND_MS }, now: clock.now });
  });
  afterAll(async () => { await relay.stop(); });

  it('closes a round short of K once the timer ran out and a quorum is in, and not with less than a quorum', async () => {
    const volunteer = await registerVolunteer(relay.url);
    const delta = (k: number) => Float32Array.from({ length: paramCount(defaultMlp) }, (_, i) => Math.sin(i + k) * 1e-3);
    const version = async () => ((await (await fetch(`${relay.url}/api/jobs/mnist-mlp`)).json()) as { version: number }).version;
    const first = await uploadDelta(relay.url, 'mnist-mlp', volunteer, delta(1));
    expect(first.status).toBe(200);
    // the timer runs out with one update of a quorum of two: the round stays open
    clock.advance(ROUND_MS + 1000);
    await relay.app.scheduler.sweep(); // what the round timer's sweep does, now rather than at its next tick
    expect(await version()).toBe(0);
    const second = await uploadDelta(relay.url, 'mnist-mlp', volunteer, delta(2));
    expect(second.status).toBe(200);
    await waitFor(version, (v) => v === 1, 100);
    const applied = relay.app.store.listUpdates('mnist-mlp');
    expect(applied.map((u) => u.taskId).sort()).toEqual([first.task.taskId, second.task.taskId].sort());
    expect(relay.app.db.prepare('SELECT COUNT(*) AS n FROM updates WHERE applied_in = 1').get()).toEqual({ n: 2 });
    const metrics = await (await fetch(`${relay.url}/metrics`)).text();
    expect(metrics).toMatch(/tabtrain_rounds_total\{job="mnist-mlp",trigger="timer"\} 1\b/);
  });
});
