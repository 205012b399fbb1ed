// The swarm's round rule: a round closes at K = max(updatesPerRound, ⌈2 · live tasks / stalenessBound⌉)
// arrivals, or once its target time has passed with a quorum (server/scheduler/round-size.ts).
import { describe, expect, it } from 'vitest';
import { createSpread, defaultTargetRoundMs, roundDue, roundSize } from '../../server/scheduler/round-size.ts';
import { isSwarm } from '../../server/scheduler/swarm.ts';
import { mnistHyperparameters } from '../../server/default-job.ts';

describe('the swarm round rule', () => {
  const s = { quorum: 2, targetRoundMs: 30_000, updatesPerRound: 2, stalenessBound: 4 };

  it('sets the target round time to 2 × target task time / staleness bound, at least 1 s', () => {
    expect(defaultTargetRoundMs(60_000, 4)).toBe(30_000);
    expect(defaultTargetRoundMs(60_000, 0)).toBe(120_000); // a job that takes no stale update: one round per two tasks
    expect(defaultTargetRoundMs(1_000, 100)).toBe(1_000);
  });

  it('sizes K from the live tasks, never below updatesPerRound, following the swarm as it grows and shrinks', () => {
    // two volunteers, each with a task out: a version per two uploads, as the round scheduler gave
    expect(roundSize(2, s)).toBe(2);
    expect(roundSize(0, s)).toBe(2);
    // 1,000 volunteers training: a round per 500 arrivals, so a task out sees about two rounds close (S / 2)
    expect(roundSize(1_000, s)).toBe(500);
    expect(roundSize(10_000, s)).toBe(5_000);
    expect(roundSize(7, s)).toBe(4); // rounded up
    expect(roundSize(1_000, { ...s, stalenessBound: 1 })).toBe(2_000);
    expect(roundSize(1_000, { ...s, stalenessBound: 0 })).toBe(2_000); // never a division by zero
    expect(roundSize(10, { ...s, updatesPerRound: 16 })).toBe(16);
  });

  it('grows K with the spread of the live tasks\' durations, which makes arrivals come faster than L per mean duration', () => {
    const a = createSpread();
    expect(a.value()).toBe(1); // nothing known: the plain rule
    for (let i = 0; i < 10; i++) a.add(60_000);
    expect(a.value()).toBeCloseTo(1, 12); // all as long
    // half of them 4× faster: they land 4× as often, so K must be bigger for a slow task to see as few closes
    for (let i = 0; i < 10; i++) a.add(15_000);
    expect(a.value()).toBeCloseTo(((60_000 + 15_000) / 2) * ((1 / 60_000 + 1 / 15_000) / 2), 9);
    expect(roundSize(20, s, a.value())).toBe(Math.ceil((2 * 20 * a.value()) / 4));
    for (let i = 0; i < 10; i++) a.remove(15_000);
    expect(a.value()).toBeCloseTo(1, 9);
    for (let i = 0; i < 10; i++) a.remove(60_000);
    expect(a.value()).toBe(1);
    expect(roundSize(20, s, NaN)).toBe(10); // a spread that is no number is the plain rule
  });

  it('closes at K arrivals at once, and with fewer only once its time is up with a quorum', () => {
    expect(roundDue(500, 1_000, 0, s)).toBe(true);
    expect(roundDue(499, 1_000, 29_999, s)).toBe(false);
    expect(roundDue(499, 1_000, 30_000, s)).toBe(true);
    expect(roundDue(1, 1_000, 60_000, s)).toBe(false); // below the quorum
    expect(roundDue(2, 2, 0, s)).toBe(true); // a small job: K = updatesPerRound
    expect(roundDue(1, 2, 0, s)).toBe(false);
  });

  it('runs a job that sets swarm settings; one that sets none or false keeps the round scheduler', () => {
    expect(isSwarm(mnistHyperparameters)).toBe(false);
    expect(isSwarm({ ...mnistHyperparameters, swarm: {} })).toBe(true);
    expect(isSwarm({ ...mnistHyperparameters, swarm: false })).toBe(false);
    expect(isSwarm({ ...mnistHyperparameters, stalenessBound: 0, swarm: {} })).toBe(true);
  });
});
