// Work sized to the device: H from each volunteer's measured time per step, its deadline from its own
// recent times, a short first task, and claims that cannot buy a zero-step task, an endless deadline or
// anyone else's deadline.
import { afterEach, describe, expect, it } from 'vitest';
import { createPace } from '../../server/scheduler/pace.ts';
import { inProcessRelay, type InProcessRelay } from './in-process.ts';

let relay: InProcessRelay | undefined;
afterEach(() => { relay?.close(); relay = undefined; });

const settings = { steps: 20, targetTaskMs: 60_000, minSteps: 1, maxSteps: 160, leaseMs: 120_000 };

describe('pace: H and deadlines sized to each device', () => {
  it('gives a volunteer 10× slower than the rest a proportionally smaller H, and a deadline its tasks do not hit', async () => {
    // a cap above the job's H, so that the fast one's H is what its pace asks for
    relay = await inProcessRelay({ stalenessBound: 4, swarm: { targetTaskMs: 60_000, maxSteps: 200 } });
    const fast = await relay.volunteer('fast'), slow = await relay.volunteer('slow');
    const stepMs = { [fast]: 500, [slow]: 5_000 };
    const first = { fast: (await relay.lease(fast))!, slow: (await relay.lease(slow))! };
    expect(first.fast.steps).toBe(3); // short first task: an eighth of H = 20, before anything is known
    expect(first.slow.steps).toBe(3);
    const planned: Record<string, { steps: number; leaseMs: number }[]> = { [fast]: [], [slow]: [] };
    // each trains its tasks at its own speed; the clock moves to each upload in turn
    const tasks = new Map([[fast, first.fast], [slow, first.slow]]);
    const issuedAt = new Map([[fast, relay.clock.t], [slow, relay.clock.t]]);
    const dueAt = (v: string) => issuedAt.get(v)! + tasks.get(v)!.steps * stepMs[v] + 1_000;
    for (let i = 0; i < 12; i++) {
      const v = dueAt(fast) <= dueAt(slow) ? fast : slow;
      relay.clock.t = dueAt(v);
      const task = tasks.get(v)!;
      expect(relay.clock.t).toBeLessThan(task.deadline); // its deadline is not hit
      await relay.upload(v, task, task.steps * stepMs[v]);
      await relay.settle();
      const next = (await relay.lease(v))!;
      planned[v].push({ steps: next.steps, leaseMs: next.deadline - relay.clock.t });
      tasks.set(v, next);
      issuedAt.set(v, relay.clock.t);
    }
    const lastFast = planned[fast].at(-1)!, lastSlow = planned[slow].at(-1)!;
    expect(lastFast.steps).toBe(120); // 60 s at 0.5 s per step
    expect(lastSlow.steps).toBe(12); // 60 s at 5 s per step: a tenth
    // deadlines from each one's own wall time per step (a high percentile, × 1.5, + 10 s), within the job's lease
    for (const p of [lastFast, lastSlow]) {
      expect(p.leaseMs).toBeGreaterThan(60_000);
      expect(p.leaseMs).toBeLessThanOrEqual(120_000);
    }
  });

  it('never plans a zero-step task, an endless deadline, or moves another volunteer\'s deadline, whatever computeMs claims', () => {
    const pace = createPace();
    pace.record('honest', 20, 20 * 1_000, 21_000);
    const before = pace.plan('honest', settings);
    for (const claim of [0, -5, 1e12, Number.NaN, Number.POSITIVE_INFINITY]) {
      pace.record(`liar-${claim}`, 20, claim, 21_000);
      pace.record(`liar-${claim}`, 20, claim, 21_000);
      const p = pace.plan(`liar-${claim}`, settings);
      expect(p.steps).toBeGreaterThanOrEqual(1);
      expect(p.steps).toBeLessThanOrEqual(160);
      expect(Number.isFinite(p.leaseMs)).toBe(true);
      expect(p.leaseMs).toBeLessThanOrEqual(120_000);
    }
    // 0 ms claims the largest task, but its deadline is the relay's measured wall time for it, not the claim
    expect(pace.plan('liar-0', settings).steps).toBe(160);
    // a 1e12 ms claim is capped at the wall time the lease was out: as if it had trained all that time
    pace.record('all-the-time', 20, 21_000, 21_000);
    pace.record('all-the-time', 20, 21_000, 21_000);
    expect(pace.plan('liar-1000000000000', settings)).toEqual(pace.plan('all-the-time', settings));
    expect(pace.plan('honest', settings)).toEqual(before);
  });

  it('halves a volunteer\'s next task when its lease ran out', () => {
    const pace = createPace();
    pace.record('v', 20, 20_000, 21_000);
    const before = pace.plan('v', settings).steps;
    pace.expired('v', before, 120_000);
    expect(pace.plan('v', settings).steps).toBeLessThanOrEqual(before / 2);
  });
});
