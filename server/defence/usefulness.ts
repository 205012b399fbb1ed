// Usefulness score (Templar's "Gauntlet" idea, anchors-robustness §2.3): how much an update lowers the
// loss on the very batch its seed assigned, computed on the relay with the CPU reference. Forward passes
// only, so far cheaper than re-running the H inner steps. An optional control batch (data the volunteer
// did not train on) separates a real improvement from overfitting or a copied update.
import type { Update } from '../../shared/codec/index.ts';
import { toDense } from '../../shared/codec/index.ts';
import type { MlpConfig } from '../../shared/models/config.ts';
import { mlpEvaluate, type LabelledBatch } from '../../shared/reference/mlp.ts';

export type UsefulnessScore = {
  /** Loss on the assigned batch at θ_v and at θ_v − Δ (the update applied as the volunteer ended). */
  before: number;
  after: number;
  /** before − after: > 0 means the update helps on its own data. */
  drop: number;
  /** The same drop on a control batch, when one is given. */
  controlDrop?: number;
};

export function usefulnessScore(
  config: MlpConfig, base: Float32Array, update: Update, batch: LabelledBatch, control?: LabelledBatch,
): UsefulnessScore {
  const delta = toDense(update);
  if (delta.length !== base.length) throw new Error(`update has ${delta.length} values but the model has ${base.length}`);
  const applied = new Float32Array(base.length);
  for (let i = 0; i < base.length; i++) applied[i] = base[i] - delta[i];
  const before = mlpEvaluate(config, base, batch).loss;
  const after = mlpEvaluate(config, applied, batch).loss;
  const score: UsefulnessScore = { before, after, drop: before - after };
  if (control) score.controlDrop = mlpEvaluate(config, base, control).loss - mlpEvaluate(config, applied, control).loss;
  return score;
}
