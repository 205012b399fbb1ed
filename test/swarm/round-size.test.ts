// The swarm's round rule: a round closes once its target time has passed with a quorum, so K follows
// the swarm; the target time keeps an update sized to the target task time within the staleness bound.
import { describe, expect, it } from 'vitest';
import { createArrivalRate, defaultTargetRoundMs, roundDue, roundSize } from '../../server/scheduler/round-size.ts';

describe('the swarm round rule', () => {
  it('sets the target round time to 2 × target task time / staleness bound, at least 1 s', () => {
    expect(defaultTargetRoundMs(60_000, 4)).toBe(30_000);
    expect(defaultTargetRoundMs(60_000, 0)).toBe(120_000); // a job that takes no stale update: one round per two tasks
    expect(defaultTargetRoundMs(1_000, 100)).toBe(1_000);
  });

  it('closes a round only once its time has passed with a quorum, however many updates are in', () => {
    const s = { quorum: 2, targetRoundMs: 30_000 };
    expect(roundDue(5_000, 29_999, s)).toBe(false);
    expect(roundDue(1, 60_000, s)).toBe(false);
    expect(roundDue(2, 30_000, s)).toBe(true);
  });

  it('reports K as the measured arrival rate × the round time, following the swarm as it grows and shrinks', () => {
    const s = { quorum: 2, targetRoundMs: 30_000 };
    const rate = createArrivalRate(60_000);
    // 1,000 volunteers finishing a 60 s task each: about 16.7 arrivals a second, for ten minutes
    let t = 0;
    for (; t < 600_000; t += 60) rate.arrived(t);
    expect(roundSize(rate.perMs(t), s)).toBeGreaterThan(480);
    expect(roundSize(rate.perMs(t), s)).toBeLessThan(520);
    // then a tenth of them: the estimate decays to the new rate within a few windows
    for (const end = t + 300_000; t < end; t += 600) rate.arrived(t);
    expect(roundSize(rate.perMs(t), s)).toBeGreaterThan(45);
    expect(roundSize(rate.perMs(t), s)).toBeLessThan(55);
    // nobody: K falls to the quorum
    expect(roundSize(rate.perMs(t + 3_600_000), s)).toBe(2);
  });
});
