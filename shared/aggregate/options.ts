// Options every rule and pre-aggregator may read (all optional; defaults in each rule's registry line).
export type AggregateOptions = {
  /** Share of updates assumed hostile (default 0.2): f = ⌈δ · n⌉ (at most ⌊(n − 1)/2⌋) for Krum, NNM and ARC, ⌊δ · n⌋ per side for the trim. */
  byzantineFraction?: number;
  /** Bucket size s; default ⌊0.25 / byzantineFraction⌋ for centered-clip, 1 (off) for the others. */
  bucket?: number;
  /** Seed of the bucketing shuffle (the relay passes the round), default 0: same inputs, same answer. */
  seed?: number;
  /** centered-clip: iterations (default 3); geometric-median: Weiszfeld iterations T (default 8). */
  iterations?: number;
  /** centered-clip: clipping radius (default: median distance of the inputs from the start). */
  tau?: number;
  /** centered-clip: starting point, e.g. the previous aggregate (default: coordinate-wise median). */
  center?: Float32Array;
  /** trimmed-mean: fraction trimmed on each side (default byzantineFraction). */
  trim?: number;
  /** geometric-median: smoothing ν (default 1e-6). */
  nu?: number;
  /** clipping pre-aggregator: the norm bound c (default the median input norm). */
  clip?: number;
  /** Pre-aggregators applied in order before the rule (after bucketing): 'nnm', 'arc', 'clipping'. */
  preAggregators?: readonly string[];
};
