// The aggregator registry: one line per rule and per pre-aggregator. The job spec's aggregator and
// preAggregators unions (shared/protocol/messages.ts) are made from these keys, so adding a rule is a new
// file plus one line here. Each rule sees dense vectors (after bucketing and pre-aggregation), their
// weights, and f, the number of hostile inputs assumed for the share δ (AggregateOptions.byzantineFraction):
// ⌈δ · n⌉, at most ⌊(n − 1) / 2⌋, for Krum, Multi-Krum, NNM and ARC. Rounding up matters for small rounds:
// at the default K = 2…4 updates, ⌊0.2 · n⌋ = 0 would turn NNM into the plain mean. The trimmed mean keeps
// its ⌊trim · n⌋ per side.
import { centeredClip } from './centered-clip.ts';
import { arcClip, staticClip } from './clipping.ts';
import { coordinateMedian, trimmedMean } from './coordinate.ts';
import { l2 } from './distances.ts';
import { AggregationError } from './errors.ts';
import { geometricMedian } from './geometric-median.ts';
import { krumSelect, multiKrum } from './krum.ts';
import { weightedMean } from './mean.ts';
import { nnm } from './nnm.ts';
import type { AggregateOptions } from './options.ts';

export type RuleContext = { f: number; delta: number; opts: AggregateOptions };
export const hostileCount = (delta: number, n: number): number => Math.max(0, Math.min(Math.ceil(delta * n - 1e-9), Math.floor((n - 1) / 2)));
type Rule = (xs: Float32Array[], ws: number[], c: RuleContext) => Float32Array;
type PreAggregator = (xs: Float32Array[], ws: number[], c: RuleContext) => Float32Array[];

const dense = (xs: Float32Array[]) => xs.map((values) => ({ kind: 'dense' as const, values }));
const median = (v: number[]) => { const s = [...v].sort((a, b) => a - b), m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };

export const rules = {
  // from the median, the result overwrites it (its own array: one model-sized array fewer)
  'centered-clip': (xs, ws, c) => {
    const o = { tau: c.opts.tau, iterations: c.opts.iterations ?? 3 };
    if (c.opts.center) return centeredClip(xs, ws, c.opts.center, o);
    const start = coordinateMedian(xs, ws);
    return centeredClip(xs, ws, start, o, start);
  },
  'trimmed-mean': (xs, ws, c) => trimmedMean(xs, ws, Math.min(Math.floor((c.opts.trim ?? c.delta) * xs.length), Math.floor((xs.length - 1) / 2))),
  median: (xs, ws) => coordinateMedian(xs, ws),
  mean: (xs, ws) => weightedMean(dense(xs), ws, xs[0].length),
  'geometric-median': (xs, ws, c) => geometricMedian(xs, ws, { nu: c.opts.nu ?? 1e-6, iterations: c.opts.iterations ?? 8 }),
  krum: (xs, ws, c) => xs[krumSelect(xs, c.f, 1)[0]].slice(),
  'multi-krum': (xs, ws, c) => multiKrum(xs, ws, c.f, xs.length - c.f),
} satisfies Record<string, Rule>;

/** Rules that bucket by default (bucketing.ts), with the bucket size s for n updates and hostile share δ:
 * centered clipping's guarantee needs s·δ well below 1/2, so s = ⌊0.25 / δ⌋ (index.ts). Others: s = 1. */
export const defaultBuckets: Partial<Record<keyof typeof rules, (n: number, delta: number) => number>> = {
  'centered-clip': (n, delta) => Math.max(1, Math.min(n, Math.floor(0.25 / delta))),
};

export const preAggregators = {
  nnm: (xs, ws, c) => nnm(xs, c.f),
  arc: (xs, ws, c) => arcClip(xs, c.f),
  clipping: (xs, ws, c) => staticClip(xs, c.opts.clip ?? median(xs.map(l2))),
} satisfies Record<string, PreAggregator>;

export type AggregatorName = keyof typeof rules;
export type PreAggregatorName = keyof typeof preAggregators;
export const aggregatorNames = Object.keys(rules) as AggregatorName[];
export const preAggregatorNames = Object.keys(preAggregators) as PreAggregatorName[];

export function isAggregatorName(x: unknown): x is AggregatorName {
  return typeof x === 'string' && Object.hasOwn(rules, x);
}
export function isPreAggregatorName(x: unknown): x is PreAggregatorName {
  return typeof x === 'string' && Object.hasOwn(preAggregators, x);
}

export function checkOptions(o: AggregateOptions): void {
  if (o.tau !== undefined && !(o.tau >= 0 && Number.isFinite(o.tau))) throw new AggregationError(`tau must be finite and ≥ 0, got ${o.tau}`);
  if (o.iterations !== undefined && !(Number.isInteger(o.iterations) && o.iterations >= 1)) throw new AggregationError(`iterations must be an integer ≥ 1, got ${o.iterations}`);
  if (o.trim !== undefined && !(o.trim >= 0 && o.trim < 0.5)) throw new AggregationError(`trim must be in [0, 0.5), got ${o.trim}`);
  if (o.nu !== undefined && !(o.nu > 0 && Number.isFinite(o.nu))) throw new AggregationError(`nu must be finite and > 0, got ${o.nu}`);
  if (o.clip !== undefined && !(o.clip > 0 && Number.isFinite(o.clip))) throw new AggregationError(`clip must be finite and > 0, got ${o.clip}`);
  for (const p of o.preAggregators ?? []) {
    if (!isPreAggregatorName(p)) throw new AggregationError(`unknown pre-aggregator ${JSON.stringify(p)}; use one of ${preAggregatorNames.join(', ')}`);
  }
}
