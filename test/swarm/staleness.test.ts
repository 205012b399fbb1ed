// Staleness on a swarm job: an update s versions old weighs 1/(1+s) (and its samples against the job's
// nominal task), and one past the staleness bound is refused, its task closed.
import { afterEach, describe, expect, it } from 'vitest';
import { RelayError } from '../../server/errors.ts';
import { JOB, inProcessRelay, type InProcessRelay } from './in-process.ts';

let relay: InProcessRelay | undefined;
afterEach(() => { relay?.close(); relay = undefined; });

describe('staleness on a swarm job', () => {
  it('weighs updates 1/(1 + staleness) × their samples, and refuses one past the bound', async () => {
    relay = await inProcessRelay({ stalenessBound: 2, quorum: 1, swarm: { targetTaskMs: 60_000, targetRoundMs: 1_000 } });
    const r = relay;
    const [a1, a2, a3, b] = await Promise.all(['a1', 'a2', 'a3', 'b'].map((n) => r.volunteer(n)));
    const old = [(await r.lease(a1))!, (await r.lease(a2))!, (await r.lease(a3))!];
    expect(old.map((t) => t.baseVersion)).toEqual([0, 0, 0]);
    /** b lands one fresh update and the round closes: one version more. */
    const advance = async () => {
      const v = r.version();
      await r.upload(b, (await r.lease(b))!, 1_000);
      r.clock.t += 1_000;
      await r.scheduler.sweep();
      expect(r.version()).toBe(v + 1);
    };
    await advance();
    const ack1 = await r.upload(a1, old[0], 1_000);
    expect(ack1).toMatchObject({ accepted: true, round: 1, weight: 1 / 2 });
    await advance();
    const ack2 = await r.upload(a2, old[1], 1_000);
    expect(ack2).toMatchObject({ accepted: true, round: 2, weight: 1 / 3 });
    // stored weight: staleness × samples against the job's nominal H (a first task is 3 steps of 20)
    const stored = new Map(r.store.listUpdates(JOB).map((u) => [u.taskId, u]));
    expect(stored.get(old[0].taskId)!.weight).toBeCloseTo((1 / 2) * (3 / 20), 12);
    expect(stored.get(old[1].taskId)!.weight).toBeCloseTo((1 / 3) * (3 / 20), 12);
    expect(stored.get(old[0].taskId)!.samples).toBe(3 * 32);
    await advance();
    // three versions behind, bound 2: refused, and the task is closed (a re-send cannot sneak in later)
    const refused = await r.upload(a3, old[2], 1_000).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(RelayError);
    expect((refused as RelayError).code).toBe('TT_ERR_TOO_STALE');
    expect(r.store.getTask(old[2].taskId)!.state).toBe('rejected');
    // and its volunteer's next task is on the newest version
    expect((await r.lease(a3))!.baseVersion).toBe(r.version());
  });
});
