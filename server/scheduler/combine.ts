// Combines a round's decoded updates into one Δ with the job's aggregator (shared/aggregate; default
// centered clipping). The round number seeds bucketing, so the same round always aggregates the same way.
import { aggregate } from '../../shared/aggregate/index.ts';
import type { Update } from '../../shared/codec/index.ts';
import type { Hyperparameters } from '../../shared/protocol/messages.ts';

export function combine(
  name: Hyperparameters['aggregator'], updates: Update[], weights: number[], round: number, preAggregators?: Hyperparameters['preAggregators'],
): Float32Array {
  return aggregate(name, updates, weights, { seed: round, preAggregators });
}
