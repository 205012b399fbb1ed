// Spot checks and reputation, BOINC-style adaptive replication (boinc wiki AdaptiveReplication): a
// fraction of tasks goes to a second volunteer with the same base version, shard and seed; the two
// updates are compared with a tolerance, because WebGPU floats are not bit-identical across devices.
// Pure policy: the relay keeps a VolunteerRecord per identity and feeds it the outcomes.
import { toDense, type Update } from '../../shared/codec/index.ts';

export type ReputationState = 'new' | 'trusted' | 'suspect' | 'banned';
export type SpotCheckOutcome = 'agree' | 'disagree' | 'invalid';

export type VolunteerRecord = {
  state: ReputationState;
  /** Consecutive clean results (spot checks agreed, updates valid) since the last strike. */
  cleanStreak: number;
  /** Strikes (disagreements, invalid updates) not yet forgiven. */
  strikes: number;
};

export type ReplicationPolicy = {
  /** Share of a volunteer's tasks replicated while new or lightly trusted (issue 6: 5 %). */
  baseRate: number;
  /** Floor for volunteers with a long clean record. */
  minRate: number;
  /** Share replicated while suspect. */
  suspectRate: number;
  /** Clean results that make a new volunteer trusted (BOINC: 10 consecutive valid). */
  trustAfter: number;
  /** Clean results that clear a suspect volunteer's strikes. */
  forgiveAfter: number;
  /** Strikes that ban (no more work). */
  banAt: number;
  /** Pair a check's two copies only across networks (./network.ts); off where every volunteer shares one (tests on loopback). */
  distinctNetworks: boolean;
};

export const defaultPolicy: ReplicationPolicy = {
  baseRate: 0.05, minRate: 0.01, suspectRate: 0.5, trustAfter: 10, forgiveAfter: 10, banAt: 3, distinctNetworks: true,
};

export const newVolunteerRecord = (): VolunteerRecord => ({ state: 'new', cleanStreak: 0, strikes: 0 });

/**
 * The transition table: state × outcome → next state, given the record after its counters were
 * updated (a clean result adds to the streak; a strike resets it and adds a strike).
 */
export const transitions: Record<ReputationState, Record<SpotCheckOutcome, (r: VolunteerRecord, p: ReplicationPolicy) => ReputationState>> = {
  new: {
    agree: (r, p) => (r.cleanStreak >= p.trustAfter ? 'trusted' : 'new'),
    disagree: (r, p) => (r.strikes >= p.banAt ? 'banned' : 'suspect'),
    invalid: (r, p) => (r.strikes >= p.banAt ? 'banned' : 'suspect'),
  },
  trusted: {
    agree: () => 'trusted',
    disagree: (r, p) => (r.strikes >= p.banAt ? 'banned' : 'suspect'),
    invalid: (r, p) => (r.strikes >= p.banAt ? 'banned' : 'suspect'),
  },
  suspect: {
    agree: (r, p) => (r.cleanStreak >= p.forgiveAfter ? 'new' : 'suspect'),
    disagree: (r, p) => (r.strikes >= p.banAt ? 'banned' : 'suspect'),
    invalid: (r, p) => (r.strikes >= p.banAt ? 'banned' : 'suspect'),
  },
  // absorbing: only an operator lifts a ban (by resetting the record)
  banned: { agree: () => 'banned', disagree: () => 'banned', invalid: () => 'banned' },
};

/** The record after one outcome (a new object; the input is not changed). */
export function recordOutcome(r: VolunteerRecord, outcome: SpotCheckOutcome, p: ReplicationPolicy = defaultPolicy): VolunteerRecord {
  if (r.state === 'banned') return { ...r };
  const next: VolunteerRecord = outcome === 'agree'
    ? { ...r, cleanStreak: r.cleanStreak + 1 }
    : { ...r, cleanStreak: 0, strikes: r.strikes + 1 };
  next.state = transitions[r.state][outcome](next, p);
  // leaving suspect by a clean streak forgives the strikes
  if (r.state === 'suspect' && next.state === 'new') { next.strikes = 0; next.cleanStreak = 0; }
  return next;
}

/** Share of this volunteer's tasks to replicate. Trusted volunteers get base × trustAfter / streak
 * (BOINC's 1/CV shape: the longer the clean record, the rarer the check), never below minRate. */
export function replicationRate(r: VolunteerRecord, p: ReplicationPolicy = defaultPolicy): number {
  switch (r.state) {
    case 'banned': return 0;
    case 'suspect': return p.suspectRate;
    case 'new': return p.baseRate;
    case 'trusted': return Math.max(p.minRate, Math.min(p.baseRate, (p.baseRate * p.trustAfter) / Math.max(1, r.cleanStreak)));
  }
}

/** Whether the volunteer may get tasks at all. */
export const mayReceiveWork = (r: VolunteerRecord): boolean => r.state !== 'banned';

export function shouldReplicate(r: VolunteerRecord, random: { next(): number }, p: ReplicationPolicy = defaultPolicy): boolean {
  return mayReceiveWork(r) && random.next() < replicationRate(r, p);
}

/** Relative L2 distance ‖a − b‖ / max(‖a‖, ‖b‖) that the default spot check tolerates: well above
 * WebGPU's cross-device float noise and int8 rounding (≈ 1/254 of a block's max), well below what a
 * sign flip (2), noise or a free rider (1) gives. Replicas must be sent without error feedback, or
 * each volunteer's own residual makes the two frames differ by much more. */
export const defaultTolerance = 0.05;

/** Compares two updates of the same task: agree when their relative L2 distance is within tolerance. */
export function compareUpdates(a: Update, b: Update, tolerance = defaultTolerance): { agree: boolean; distance: number } {
  const x = toDense(a), y = toDense(b);
  if (x.length !== y.length) return { agree: false, distance: Infinity };
  let dd = 0, aa = 0, bb = 0;
  for (let i = 0; i < x.length; i++) {
    const d = x[i] - y[i];
    dd += d * d; aa += x[i] * x[i]; bb += y[i] * y[i];
  }
  const scale = Math.sqrt(Math.max(aa, bb));
  const distance = scale === 0 ? 0 : Math.sqrt(dd) / scale;
  if (!Number.isFinite(distance)) return { agree: false, distance: Infinity };
  return { agree: distance <= tolerance, distance };
}
