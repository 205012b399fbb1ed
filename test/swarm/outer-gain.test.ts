// The outer step's gain for a big round (server/scheduler/outer-gain.ts, AdaScale's gain ratio): read from
// the spread of the round's own updates, 1 where they agree, up to the cap where they are mostly noise,
// and never below 1 or for a round no bigger than the one the job's outer learning rate was set for.
import { describe, expect, it } from 'vitest';
import { createRoundAccumulator } from '../../shared/aggregate/streaming.ts';
import { outerGain } from '../../server/scheduler/outer-gain.ts';
import { rng } from '../../shared/util/rng.ts';

const P = 2_000;
/** k updates: a shared direction of per-coordinate size `signal` plus independent noise of size `noise`. */
function round(k: number, signal: number, noise: number, weight = (_: number) => 1) {
  const r = rng(k);
  const g = Float32Array.from({ length: P }, () => r.normal() * signal);
  const acc = createRoundAccumulator(P, { seed: 1 });
  for (let i = 0; i < k; i++) acc.fold({ kind: 'dense', values: g.map((v) => v + r.normal() * noise) }, weight(i));
  return acc.spread();
}

describe('the outer step\'s gain', () => {
  it('is 1 when the round\'s updates agree, whatever their number', () => {
    const s = round(200, 1, 0);
    expect(s.meanSquare).toBeCloseTo(s.squareOfMean, 6);
    expect(outerGain(s, 2, 8)).toBe(1);
  });

  it('grows as k / kRef where the updates are noise, up to its cap', () => {
    expect(outerGain(round(16, 0, 1), 2, 100)).toBeGreaterThan(6);
    expect(outerGain(round(16, 0, 1), 2, 100)).toBeLessThan(10);
    expect(outerGain(round(400, 0, 1), 2, 8)).toBe(8);
  });

  it('follows (σ²/kRef + |G|²) / (σ²/k + |G|²) between the two', () => {
    // per coordinate |G|² = 1, σ² = 16: at kRef 4, k 64 the ratio is (4 + 1) / (0.25 + 1) = 4
    const g = outerGain(round(64, 1, 4), 4, 100);
    expect(g).toBeGreaterThan(3.5);
    expect(g).toBeLessThan(4.5);
  });

  it('leaves a round no bigger than kRef, a disabled cap, and an empty round at 1', () => {
    expect(outerGain(round(2, 0, 1), 2, 8)).toBe(1);
    expect(outerGain(round(400, 0, 1), 2, 1)).toBe(1);
    expect(outerGain(createRoundAccumulator(P).spread(), 2, 8)).toBe(1);
  });

  it('counts the updates weights amount to, (Σw)² / Σw², not how many were folded', () => {
    const s = round(40, 0, 1, (i) => (i < 20 ? 1 : 0));
    expect(s.effective).toBeCloseTo(20, 9);
    const t = round(40, 0, 1, (i) => (i % 2 ? 3 : 1));
    expect(t.effective).toBeCloseTo((40 * 2) ** 2 / (20 * 9 + 20), 9);
  });
});
