// What a volunteer claims through the relay's real intake cannot size anyone's work: computeMs of 0 or
// 1e12 in an upload gives its sender a task of at least one step and at most the job's cap, a deadline
// within the job's lease, and leaves an honest volunteer's next task and deadline as they were; a
// negative claim is refused, naming the field.
import { afterEach, describe, expect, it } from 'vitest';
import { RelayError } from '../../server/errors.ts';
import { JOB, inProcessRelay, type InProcessRelay } from './in-process.ts';

let relay: InProcessRelay | undefined;
afterEach(() => { relay?.close(); relay = undefined; });

describe('computeMs claims on a swarm job', () => {
  it('buy no zero-step task, no endless deadline, and move no one else\'s deadline', async () => {
    relay = await inProcessRelay({ stalenessBound: 4, leaseMs: 120_000, swarm: { targetTaskMs: 60_000, maxSteps: 200 } });
    const r = relay;
    const h = r.store.getJob(JOB)!.hyperparameters;
    const [honest, zero, huge, wall, negative] = await Promise.all(['honest', 'zero', 'huge', 'wall', 'negative'].map((n) => r.volunteer(n)));
    /** Two tasks each, every one out for 20 s of the relay's clock, claiming `claim` ms of compute. */
    const trainTwice = async (v: string, claim: (steps: number) => number) => {
      for (let i = 0; i < 2; i++) {
        const task = (await r.lease(v))!;
        r.clock.t += 20_000;
        await r.upload(v, task, claim(task.steps));
        await r.settle();
      }
    };
    await trainTwice(honest, (steps) => steps * 1_000);
    const before = r.scheduler.swarm.plan(honest, h);
    await trainTwice(zero, () => 0);
    await trainTwice(huge, () => 1e12);
    for (const v of [zero, huge]) {
      const t0 = r.clock.t;
      const task = (await r.lease(v))!;
      expect(task.steps).toBeGreaterThanOrEqual(1);
      expect(task.steps).toBeLessThanOrEqual(200);
      expect(Number.isFinite(task.deadline)).toBe(true);
      expect(task.deadline - t0).toBeLessThanOrEqual(120_000);
      expect(task.deadline - t0).toBeGreaterThan(0);
    }
    // 1e12 ms is held to the 20 s the lease was really out: planned as one that trained all that time
    await trainTwice(wall, () => 20_000);
    expect(r.scheduler.swarm.plan(huge, h)).toEqual(r.scheduler.swarm.plan(wall, h));
    // 0 ms claims the largest task, but its deadline comes from the relay's clock, not from the claim
    expect(r.scheduler.swarm.plan(zero, h).steps).toBe(200);
    expect(r.scheduler.swarm.plan(honest, h)).toEqual(before);

    const task = (await r.lease(negative))!;
    r.clock.t += 20_000;
    const refused = await r.upload(negative, task, -5).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(RelayError);
    expect((refused as RelayError).code).toBe('TT_ERR_BAD_FRAME');
    expect((refused as RelayError).message).toContain('computeMs');
  });
});
