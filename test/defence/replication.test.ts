import { describe, expect, it } from 'vitest';
import { decodeUpdate, encodeUpdate, type Update } from '../../shared/codec/index.ts';
import { rng } from '../../shared/util/rng.ts';
import {
  compareUpdates, defaultPolicy, mayReceiveWork, newVolunteerRecord, recordOutcome, replicationRate, shouldReplicate,
  type SpotCheckOutcome, type VolunteerRecord,
} from '../../server/defence/replication.ts';
import { networkOf } from '../../server/defence/network.ts';

const run = (outcomes: SpotCheckOutcome[], from: VolunteerRecord = newVolunteerRecord()) => outcomes.reduce((r, o) => recordOutcome(r, o), from);
const agrees = (n: number): SpotCheckOutcome[] => Array.from({ length: n }, () => 'agree');

describe('reputation state machine', () => {
  it('a new volunteer becomes trusted after 10 clean results, and checks get rarer with its record', () => {
    expect(run(agrees(9)).state).toBe('new');
    const trusted = run(agrees(10));
    expect(trusted.state).toBe('trusted');
    expect(replicationRate(newVolunteerRecord())).toBe(0.05);
    expect(replicationRate(trusted)).toBe(0.05);
    expect(replicationRate(run(agrees(40)))).toBeCloseTo(0.0125, 10);
    expect(replicationRate(run(agrees(1000)))).toBe(0.01);
  });
  it('a disagreement makes a volunteer suspect: checked half the time, until 10 clean results forgive it', () => {
    const s = run([...agrees(30), 'disagree']);
    expect(s).toEqual({ state: 'suspect', cleanStreak: 0, strikes: 1 });
    expect(replicationRate(s)).toBe(0.5);
    expect(run(agrees(9), s).state).toBe('suspect');
    expect(run(agrees(10), s)).toEqual({ state: 'new', cleanStreak: 0, strikes: 0 });
  });
  it('three strikes without a clean streak between them: no more work', () => {
    const b = run(['invalid', 'agree', 'disagree', 'agree', 'agree', 'invalid']);
    expect(b.state).toBe('banned');
    expect(mayReceiveWork(b)).toBe(false);
    expect(replicationRate(b)).toBe(0);
    expect(run(agrees(50), b).state).toBe('banned');
    expect(shouldReplicate(b, { next: () => 0 })).toBe(false);
  });
  it('shouldReplicate draws with the record\'s rate', () => {
    const r = rng(1);
    let n = 0;
    for (let i = 0; i < 20_000; i++) if (shouldReplicate(newVolunteerRecord(), r)) n++;
    expect(n / 20_000).toBeGreaterThan(0.04);
    expect(n / 20_000).toBeLessThan(0.06);
    expect(shouldReplicate(newVolunteerRecord(), { next: () => 0.049 })).toBe(true);
    expect(shouldReplicate(newVolunteerRecord(), { next: () => 0.05 })).toBe(false);
    expect(defaultPolicy.baseRate).toBe(0.05);
  });
  it('recordOutcome does not change the record it is given', () => {
    const r = newVolunteerRecord();
    recordOutcome(r, 'disagree');
    expect(r).toEqual(newVolunteerRecord());
  });
});

describe('compareUpdates', () => {
  const r = rng(5);
  const honest = Float32Array.from({ length: 5000 }, () => r.normal() * 1e-3);
  // another device: float noise of a few ulps plus int8 rounding on both sides
  const otherDevice = honest.map((x) => x * (1 + (r.next() - 0.5) * 1e-5));
  const int8 = (x: Float32Array): Update => decodeUpdate(encodeUpdate(x, { kind: 'int8', block: 256 }));
  it('agrees on the same task run on two devices, compressed', () => {
    const c = compareUpdates(int8(honest), int8(otherDevice));
    expect(c.agree).toBe(true);
    expect(c.distance).toBeLessThan(0.01);
  });
  it('disagrees with a sign flip, noise, a zero update and a different length', () => {
    expect(compareUpdates(int8(honest), int8(honest.map((x) => -x)))).toMatchObject({ agree: false });
    expect(compareUpdates(int8(honest), int8(honest.map((x) => -x))).distance).toBeCloseTo(2, 2);
    const noise = Float32Array.from(honest, () => r.normal() * 1e-3);
    expect(compareUpdates(int8(honest), int8(noise)).agree).toBe(false);
    expect(compareUpdates(int8(honest), { kind: 'dense', values: new Float32Array(5000) })).toEqual({ agree: false, distance: 1 });
    expect(compareUpdates(int8(honest), { kind: 'dense', values: new Float32Array(3) }).agree).toBe(false);
  });
  it('compares a sparse and a dense form of the same update', () => {
    const sparse = decodeUpdate(encodeUpdate(honest, { kind: 'topk', fraction: 1, bits: 8 }));
    expect(sparse.kind).toBe('sparse');
    expect(compareUpdates(sparse, int8(honest)).agree).toBe(true);
  });
});

describe('networks spot checks pair across', () => {
  it('group IPv4 by /24 and IPv6 by /64, IPv4-mapped addresses as IPv4', () => {
    expect(networkOf('203.0.113.7')).toBe('v4:203.0.113');
    expect(networkOf('203.0.113.200')).toBe(networkOf('203.0.113.7'));
    expect(networkOf('203.0.114.7')).not.toBe(networkOf('203.0.113.7'));
    expect(networkOf('::ffff:203.0.113.9')).toBe('v4:203.0.113');
    expect(networkOf('2001:db8:0:1::5')).toBe('v6:2001:db8:0:1');
    expect(networkOf('2001:0db8:0000:0001:ffff::1')).toBe(networkOf('2001:db8::1:0:0:0:5'));
    expect(networkOf('2001:db8:0:2::5')).not.toBe(networkOf('2001:db8:0:1::5'));
    expect(networkOf('::1')).toBe('v6:0:0:0:0');
    expect(networkOf('not an address')).toBe('other:not an address');
  });
});
