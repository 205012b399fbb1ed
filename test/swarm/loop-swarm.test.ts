// The one volunteer loop (CPU trainer, real HTTP) on a swarm job: a short first task, then tasks sized
// to its measured pace, uploads accepted as the versions move under it.
import { afterEach, describe, expect, it } from 'vitest';
import type { Task } from '../../shared/protocol/messages.ts';
import { startRelay, startVolunteers, waitFor, type TestRelay } from '../helpers/relay.ts';

let relay: TestRelay | undefined;
afterEach(async () => { await relay?.stop(); relay = undefined; });

describe('the volunteer loop on a swarm job', () => {
  it('trains a short first task, then tasks sized to its pace, and its updates are taken', async () => {
    // no spot checks: a check's copy runs the job's full H (both copies must compute the same), which is not what this test sizes
    relay = await startRelay({ defaultJob: { stalenessBound: 2, quorum: 1, swarm: { targetTaskMs: 5_000, targetRoundMs: 1_000 } }, evaluate: false, defence: { replication: { baseRate: 0 } } });
    const tasks: Task[][] = [[], []];
    const vols = startVolunteers(relay.url, 2, { onEvent: (i, e) => { if (e.type === 'task') tasks[i].push(e.task); } });
    // rounds close by time (1 s here): wait for four uploads and one that landed after a round closed
    const uploaded = () => vols.events.filter((e) => e.type === 'uploaded');
    await waitFor(async () => uploaded(), (us) => us.length >= 4 && us.some((e) => e.type === 'uploaded' && e.ack.round >= 1));
    await vols.stop();
    expect(vols.events.filter((e) => e.type === 'error')).toEqual([]);
    expect(vols.events.some((e) => e.type === 'uploaded' && e.ack.accepted && e.ack.round >= 1)).toBe(true);
    for (const mine of tasks) {
      expect(mine[0].steps).toBe(3); // ⌈20 / 8⌉ before the relay has measured it
      expect(mine.every((t) => t.residualMaxAge === 2)).toBe(true);
    }
    // once measured (the first upload is in), a task is sized to take about 5 s on this device
    const later = tasks.flat().filter((t) => t.steps !== 3);
    expect(later.length).toBeGreaterThan(0);
  });
});
