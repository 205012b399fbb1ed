// Robust aggregation of a round's updates into one pseudo-gradient, chosen per job.
//
//   centered-clip: bucketing, then centered clipping, 3 iterations from the coordinate-wise
//                 median (or a given center), radius = median distance to it. The bucket size is
//                 s = ⌊0.25 / δ⌋ for an assumed attacker share δ (default 0.2, so s = 1; δ = 0.1 gives
//                 s = 2): bucketing multiplies the tainted share by up to s, and Karimireddy et al.'s
//                 guarantee needs s·δ well below 1/2. Measured on the default job at δ = 0.2, s = 2
//                 doubled the error of the aggregate under IPM and sign flips versus s = 1 (bench:attacks).
//   trimmed-mean: per coordinate, drop ⌊δ·n⌋ lowest and highest values (δ as above), mean the rest.
//   median:       weighted coordinate-wise median.
//   mean:         weighted mean (no robustness: one update can move it anywhere).
//   geometric-median: smoothed Weiszfeld (RFA), ByzFL's GeometricMedian.
//   krum, multi-krum (default): the update(s) closest to their n − f − 1 nearest others, ByzFL's Krum /
//                 MultiKrum; chosen as the job default by bench:attacks, evidence in docs/defence.md.
// Pre-aggregators (options.preAggregators, in order, after bucketing; any rule takes any list):
//   nnm:      nearest-neighbour mixing, ByzFL's NNM; arc: adaptive robust clipping, ByzFL's ARC;
//   clipping: static norm clipping, ByzFL's Clipping.
// Each rule's file cites its source and ByzFL's definition; registry.ts lists them (one line each).
//
// Compressed inputs. int8 frames decode to dense vectors and are aggregated as they are. A top-k sparse
// update is read as the vector its sender actually sent: absent coordinates are zero. That is the only
// reading under which error feedback is exact (the sender keeps what it did not send in its residual and
// sends it later), and the research notes (anchors-robustness §3, [D]) point out that coordinate-wise
// rules on "present only" values are ill-posed: an attacker that alone carries a coordinate would own
// it. Consequences, by rule: mean and centered clipping (vector rules: distances in L2) are unaffected;
// median and trimmed mean move a coordinate only when enough volunteers send it, so on top-k they are
// conservative. Error feedback is what makes that work: a coordinate that matters keeps growing in every
// honest residual until many volunteers send it in the same round. Bucketing averages sparse updates into
// denser bucket means first, which also softens this.
import { toDense, updateLength, type Update } from '../codec/index.ts';
import { bucketMeans } from './bucketing.ts';
import { AggregationError } from './errors.ts';
import type { AggregateOptions } from './options.ts';
import { aggregatorNames, checkOptions, defaultBuckets, hostileCount, isAggregatorName, preAggregators, rules, type AggregatorName, type PreAggregatorName } from './registry.ts';

export { AggregationError, aggregatorNames, isAggregatorName, type AggregateOptions, type AggregatorName };
export { preAggregatorNames, isPreAggregatorName, type PreAggregatorName } from './registry.ts';
/** The job default (shared/jobs/spec.ts), chosen from bench:attacks (docs/defence.md). */
export const defaultAggregator: AggregatorName = 'multi-krum';

export function aggregate(name: AggregatorName, updates: Update[], weights: number[], opts: AggregateOptions = {}): Float32Array {
  if (!isAggregatorName(name)) throw new AggregationError(`unknown aggregator ${JSON.stringify(name)}; use one of ${aggregatorNames.join(', ')}`);
  if (updates.length === 0) throw new AggregationError('no updates to aggregate');
  if (weights.length !== updates.length) throw new AggregationError(`${updates.length} updates but ${weights.length} weights`);
  const d = updateLength(updates[0]);
  updates.forEach((u, j) => {
    if (updateLength(u) !== d) throw new AggregationError(`update ${j} has ${updateLength(u)} values, update 0 has ${d}`);
  });
  weights.forEach((w, j) => {
    if (!(Number.isFinite(w) && w >= 0)) throw new AggregationError(`weight ${j} is ${w}; weights must be finite and ≥ 0`);
  });
  if (!(weights.reduce((a, b) => a + b, 0) > 0)) throw new AggregationError('weights sum to 0; at least one update must count');
  if (opts.center && opts.center.length !== d) throw new AggregationError(`center has ${opts.center.length} values, updates have ${d}`);
  checkOptions(opts);

  const delta = opts.byzantineFraction ?? 0.2;
  if (!(delta >= 0 && delta < 0.5)) throw new AggregationError(`byzantineFraction must be in [0, 0.5), got ${delta}`);
  const s = opts.bucket ?? defaultBuckets[name]?.(updates.length, delta) ?? 1;
  if (!(Number.isInteger(s) && s >= 1)) throw new AggregationError(`bucket must be an integer ≥ 1, got ${s}`);
  const b = name === 'mean' && s === 1 ? { updates, weights } : bucketMeans(updates, weights, d, s, opts.seed ?? 0);
  // Selection and neighbour rules read "n" as the updates that count: zero-weight ones are left out.
  const keep = b.weights.map((w, j) => j).filter((j) => b.weights[j] > 0);
  let xs = keep.map((j) => toDense(b.updates[j]));
  const ws = keep.map((j) => b.weights[j]);
  const ctx = { f: hostileCount(delta, xs.length), delta, opts };
  for (const p of (opts.preAggregators ?? []) as PreAggregatorName[]) xs = preAggregators[p](xs, ws, ctx);
  return rules[name](xs, ws, ctx);
}
