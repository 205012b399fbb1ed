import { describe, expect, it } from 'vitest';
import { initParams, type MlpConfig } from '../../shared/models/config.ts';
import { adamwDefaults, adamwState, adamwStep } from '../../shared/reference/adamw.ts';
import { mlpLossAndGrad } from '../../shared/reference/mlp.ts';
import { rng } from '../../shared/util/rng.ts';
import { usefulnessScore } from '../../server/defence/usefulness.ts';
import { RateLimiter, RefusalCounter } from '../../server/defence/rate-limit.ts';

describe('usefulnessScore', () => {
  // a small task: 8 inputs, 3 classes, labels from a fixed linear rule
  const config: MlpConfig = { kind: 'mlp', inputs: 8, hidden: [16], classes: 3 };
  const r = rng(3);
  const batch = (n: number) => {
    const x = Float32Array.from({ length: n * 8 }, () => r.normal());
    const y = Array.from({ length: n }, (_, i) => (x[i * 8] + x[i * 8 + 1] > 0 ? 0 : x[i * 8 + 2] > 0 ? 1 : 2));
    return { x, y, n };
  };
  const own = batch(64), control = batch(64);
  const base = initParams(config, 1);
  const trained = base.slice();
  const s = adamwState(base.length);
  for (let t = 0; t < 20; t++) adamwStep(trained, mlpLossAndGrad(config, trained, own).grad, s, { ...adamwDefaults, lr: 1e-2 });
  const delta = base.map((b, i) => b - trained[i]);

  it('an honest update lowers the loss on its own batch; its negation raises it', () => {
    const good = usefulnessScore(config, base, { kind: 'dense', values: delta }, own, control);
    expect(good.drop).toBeGreaterThan(0.05);
    expect(good.after).toBeLessThan(good.before);
    expect(good.controlDrop).toBeDefined();
    const flipped = usefulnessScore(config, base, { kind: 'dense', values: delta.map((x) => -x) }, own);
    expect(flipped.drop).toBeLessThan(0);
    const zero = usefulnessScore(config, base, { kind: 'dense', values: new Float32Array(base.length) }, own);
    expect(zero.drop).toBe(0);
  });
  it('refuses an update of the wrong size', () => {
    expect(() => usefulnessScore(config, base, { kind: 'dense', values: new Float32Array(3) }, own)).toThrow(/3 values/);
  });
});

describe('RateLimiter', () => {
  it('allows a burst, then refuses with a retry time, then refills', () => {
    const l = new RateLimiter({ capacity: 3, refillPerSecond: 0.5 });
    expect([1, 2, 3].map(() => l.take('1.2.3.4', 0).ok)).toEqual([true, true, true]);
    expect(l.take('1.2.3.4', 0)).toEqual({ ok: false, retryAfterSeconds: 2 });
    expect(l.take('5.6.7.8', 0).ok).toBe(true); // keys are independent
    expect(l.take('1.2.3.4', 1000).ok).toBe(false);
    expect(l.take('1.2.3.4', 2000).ok).toBe(true);
  });
  it('keeps memory bounded under many keys', () => {
    const l = new RateLimiter({ capacity: 1, refillPerSecond: 1, maxKeys: 100 });
    for (let i = 0; i < 10_000; i++) l.take(`k${i}`, 0);
    expect(l.size).toBe(100);
  });
  it('refuses nonsense settings', () => {
    expect(() => new RateLimiter({ capacity: 0, refillPerSecond: 1 })).toThrow(/capacity/);
  });
  it('RefusalCounter counts by reason', () => {
    const c = new RefusalCounter();
    c.add('NORM_TOO_LARGE'); c.add('NON_FINITE'); c.add('NORM_TOO_LARGE');
    expect(c.snapshot()).toEqual({ NON_FINITE: 1, NORM_TOO_LARGE: 2 });
  });
});
