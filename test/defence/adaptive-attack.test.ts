// The attack bench's attacks that adapt to the usefulness check (bench/attacks/attacks.ts): the attacker's
// own honest Δ plus τ × the poison, τ from the line search counting only a τ the relay accepts.
import { describe, expect, it } from 'vitest';
import { lineSearch, mixIn, type AttackContext } from '../../bench/attacks/attacks.ts';
import { rng } from '../../shared/util/rng.ts';

const honest = [Float32Array.of(1, 0), Float32Array.of(1, 0.2), Float32Array.of(1, -0.2)];
/** A relay that refuses attacker vectors whose second coordinate passes `limit`, and otherwise averages. */
const relay = (limit: number): AttackContext['defend'] => (xs) => {
  const ok = xs.filter((x) => Math.abs(x[1]) <= limit);
  const all = [...honest, ...ok];
  return { agg: Float32Array.from([0, 1], (i) => all.reduce((a, x) => a + x[i], 0) / all.length), attackersAccepted: ok.length };
};
const ctx = (limit: number): AttackContext => ({
  honest, f: 2, r: rng(1), defend: relay(limit), train: () => { throw new Error('not used'); },
});
const make = (t: number) => [Float32Array.of(1, t), Float32Array.of(1, t)];

describe('adaptive attacks', () => {
  it('mixIn adds τ × the poison to the attacker\'s own Δ, leaving it untouched', () => {
    const own = Float32Array.of(1, 2, 3);
    expect(Array.from(mixIn(own, [1, 0, -1], 0.5))).toEqual([1.5, 2, 2.5]);
    expect(Array.from(own)).toEqual([1, 2, 3]);
  });

  it('the line search that must pass picks the largest τ the relay accepts; scored on distance alone it can pick one the relay refuses', () => {
    const passing = lineSearch(ctx(0.05), make, 0.01, true);
    expect(passing).toBeLessThanOrEqual(0.05);
    expect(passing).toBeGreaterThan(0.035); // the grid from 0.01 has 0.0351 then 0.0534; refined between
    expect(relay(0.05)(make(passing)).attackersAccepted).toBe(2);
    // a relay whose aggregate without the attackers is itself far from μ (as Multi-Krum's drop of honest
    // updates can be): distance alone prefers being refused
    const far: AttackContext = { ...ctx(0.05), defend: (xs) => {
      const r = relay(0.05)(xs);
      return r.attackersAccepted ? r : { agg: Float32Array.of(5, 5), attackersAccepted: 0 };
    } };
    expect(far.defend(make(lineSearch(far, make, 0.01))).attackersAccepted).toBe(0);
    expect(far.defend(make(lineSearch(far, make, 0.01, true))).attackersAccepted).toBe(2);
  });
});
