// A round aggregated as its updates stream past, in O(buckets × P) memory whatever the round's size K.
//
// Up to `buckets` updates are kept whole, so a round that small aggregates exactly as aggregate() always
// did (same bucketing shuffle, same rule). The next update collapses them: each kept update becomes one
// bucket's running weighted sum, and every later update is added into one bucket, chosen by a seeded
// shuffle of the bucket ids drawn afresh for each block of `buckets` arrivals (so sizes stay within one
// of each other, and which updates share a bucket cannot be arranged by sending at a chosen moment).
// At the close the robust rule runs over the bucket means, weighted by each bucket's total weight:
// bucketing as Karimireddy, He and Jaggi (arXiv 2006.09365) define it, with s = K / buckets. The price is
// theirs too: a hostile share δ taints up to s·δ of the buckets, so robustness at very large K rests on
// the relay's other checks (norm bound, spot checks, usefulness) more than on the rule.
import { updateLength, type Update } from '../codec/index.ts';
import { rng } from '../util/rng.ts';
import { aggregate } from './index.ts';
import { AggregationError } from './errors.ts';
import type { AggregateOptions } from './options.ts';
import type { AggregatorName } from './registry.ts';

/** Default bucket count: enough inputs for the robust rules to tell a few outliers from the crowd. */
export const DEFAULT_ROUND_BUCKETS = 32;
/** What a round's accumulator may hold of P-length vectors (float32 kept updates, or float64 bucket sums). */
export const ROUND_MEMORY_BYTES = 3e9;

/** Buckets for a round of `n` updates of `length` parameters: every update kept whole (the rule sees each)
 * when up to DEFAULT_ROUND_BUCKETS of them fit the memory; otherwise as many float64 bucket sums as fit, at
 * least 2 and at most DEFAULT_ROUND_BUCKETS. 32 sums of a 124M model would be 32 GB: a large swarm round
 * there gets 2 (so its rule sees two bucket means, and its robustness rests on the relay's other checks). */
export function roundBuckets(n: number, length: number): number {
  if (n <= DEFAULT_ROUND_BUCKETS && n * 4 * length <= ROUND_MEMORY_BYTES) return Math.max(1, n);
  return Math.max(2, Math.min(DEFAULT_ROUND_BUCKETS, Math.floor(ROUND_MEMORY_BYTES / (8 * length))));
}

export type RoundAccumulator = {
  /** Adds one update with its weight (≥ 0); the update may be dropped by the caller afterwards. */
  fold(u: Update, weight: number): void;
  /** Updates folded so far, and of them with weight > 0. */
  readonly count: number;
  readonly counted: number;
  /** P-length vectors this accumulator holds now (kept updates or bucket sums): at most `buckets`. */
  readonly live: number;
  /** The round's aggregate by the rule; throws AggregationError when nothing counts. */
  close(name: AggregatorName, opts?: AggregateOptions): Float32Array;
  /** How much the round's updates agree, for the outer step's gain (server/scheduler/outer-gain.ts):
   * the weighted mean of their squared norms, the squared norm of their weighted mean, and the number
   * of equal-weight updates their weights amount to, (Σw)² / Σw². Two scalars more per fold. */
  spread(): RoundSpread;
  /** Ends the accumulator (nothing may be asked of it after) and hands over the P-length float32 arrays of
   * its kept dense updates for the caller to reuse (a round reads its checkpoint into them, rather than
   * allocating three model-sized arrays while these wait for the garbage collector). `exclude`: arrays
   * not to hand over (the rule's result, in case it is one of them). */
  release(exclude?: Float32Array[]): Float32Array[];
};
export type RoundSpread = { meanSquare: number; squareOfMean: number; effective: number };

export function createRoundAccumulator(length: number, o: { buckets?: number; seed?: number } = {}): RoundAccumulator {
  const buckets = o.buckets ?? DEFAULT_ROUND_BUCKETS;
  if (!(Number.isInteger(buckets) && buckets >= 1)) throw new AggregationError(`buckets must be an integer ≥ 1, got ${buckets}`);
  const seed = o.seed ?? 0;
  const r = rng(seed ^ 0x5bd1e995);
  // phase 1: whole updates (at most `buckets` of them)
  let kept: { u: Update; w: number }[] | undefined = [];
  // phase 2: per bucket, Σ w·x (float64, so thousands of small adds lose nothing) and Σ w
  let sums: Float64Array[] = [];
  let totals: number[] = [];
  let block: number[] = [];
  let count = 0, counted = 0;
  // Σ w·|x|², Σ w, Σ w² over every update folded with weight > 0 (spread())
  let wSq = 0, wSum = 0, w2Sum = 0;
  // indexed, not for…of: the iterator cost 10× the multiply-adds (0.14 s a fold at 10M parameters)
  const normSq = (u: Update) => { const x = u.values; let s = 0; for (let i = 0; i < x.length; i++) s += x[i] * x[i]; return s; };

  const addInto = (b: number, u: Update, w: number) => {
    const acc = sums[b];
    if (u.kind === 'dense') for (let i = 0; i < length; i++) acc[i] += w * u.values[i];
    else for (let t = 0; t < u.indices.length; t++) acc[u.indices[t]] += w * u.values[t];
    totals[b] += w;
  };
  const nextBucket = (): number => {
    if (block.length === 0) {
      block = Array.from({ length: buckets }, (_, i) => i);
      for (let i = block.length - 1; i > 0; i--) { const j = r.int(i + 1); [block[i], block[j]] = [block[j], block[i]]; }
    }
    return block.pop()!;
  };

  return {
    fold(u, w) {
      if (updateLength(u) !== length) throw new AggregationError(`update has ${updateLength(u)} values, the round has ${length}`);
      if (!(Number.isFinite(w) && w >= 0)) throw new AggregationError(`weight is ${w}; weights must be finite and ≥ 0`);
      count++;
      if (w > 0) { counted++; wSq += w * normSq(u); wSum += w; w2Sum += w * w; }
      // a zero weight adds nothing to a sum: only whole-update mode needs to hold it
      if (kept && kept.length < buckets) { kept.push({ u, w }); return; }
      if (kept) {
        sums = Array.from({ length: buckets }, () => new Float64Array(length));
        totals = new Array<number>(buckets).fill(0);
        kept.forEach((k, b) => addInto(b, k.u, k.w));
        kept = undefined;
      }
      if (w > 0) addInto(nextBucket(), u, w);
    },
    get count() { return count; },
    get counted() { return counted; },
    get live() { return kept ? kept.length : sums.length; },
    spread() {
      if (!(wSum > 0)) return { meanSquare: 0, squareOfMean: 0, effective: 0 };
      // the weighted mean of everything folded: the kept updates, or the bucket sums together
      const mean = new Float64Array(length);
      if (kept) {
        for (const k of kept) {
          if (!(k.w > 0)) continue;
          if (k.u.kind === 'dense') for (let i = 0; i < length; i++) mean[i] += k.w * k.u.values[i];
          else for (let t = 0; t < k.u.indices.length; t++) mean[k.u.indices[t]] += k.w * k.u.values[t];
        }
      } else for (const acc of sums) for (let i = 0; i < length; i++) mean[i] += acc[i];
      let sq = 0;
      for (let i = 0; i < length; i++) { const m = mean[i] / wSum; sq += m * m; }
      return { meanSquare: wSq / wSum, squareOfMean: sq, effective: (wSum * wSum) / w2Sum };
    },
    release(exclude = []) {
      const own = (x: Float32Array) => x.length === length && x.byteOffset === 0 && x.buffer.byteLength === 4 * length
        && !exclude.some((e) => e.buffer === x.buffer);
      const out = (kept ?? []).flatMap((k) => (k.u.kind === 'dense' && own(k.u.values) ? [k.u.values] : []));
      kept = undefined; sums = []; totals = [];
      return out.filter((x, i) => out.findIndex((y) => y.buffer === x.buffer) === i);
    },
    close(name, opts = {}) {
      if (kept) return aggregate(name, kept.map((k) => k.u), kept.map((k) => k.w), { seed, ...opts });
      const means: Update[] = [], ws: number[] = [];
      sums.forEach((acc, b) => {
        if (!(totals[b] > 0)) return;
        const t = totals[b];
        means.push({ kind: 'dense', values: Float32Array.from(acc, (v) => v / t) });
        ws.push(t);
      });
      if (means.length === 0) throw new AggregationError('weights sum to 0; at least one update must count');
      // the buckets are the bucketing: the rule sees their means as they are
      return aggregate(name, means, ws, { seed, ...opts, bucket: 1 });
    },
  };
}
