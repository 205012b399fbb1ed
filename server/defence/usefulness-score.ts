// The usefulness score itself (./usefulness.ts): how much an update lowers the loss on a batch, two forward
// passes with the CPU reference. Pure, and apart from the relay's state, so a pool worker runs it
// (server/pool/worker.ts): at a GPT of tens of millions of parameters the passes take seconds.
import { toDense, type Update } from '../../shared/codec/index.ts';
import type { ModelConfig } from '../../shared/models/config.ts';
import { runtimeOf } from '../../shared/models/runtimes.ts';
import type { LabelledBatch } from '../../shared/reference/mlp.ts';
import type { Batch } from '../../shared/train/trainer.ts';

export type UsefulnessScore = {
  /** Loss on the assigned batch at θ_v and at θ_v − Δ (the update applied as the volunteer ended). */
  before: number;
  after: number;
  /** before − after: > 0 means the update helps on its own data. */
  drop: number;
  /** The same drop on a control batch, when one is given. */
  controlDrop?: number;
};

/** Mean cross-entropy of a batch (rows of an MLP, token windows of a GPT), forward only. */
export function batchLoss(config: ModelConfig, params: Float32Array, batch: Batch | LabelledBatch): number {
  return runtimeOf(config).evaluate(config, params, batch).loss;
}

export function usefulnessScore(
  config: ModelConfig, base: Float32Array, update: Update, batch: Batch | LabelledBatch, control?: Batch | LabelledBatch,
): UsefulnessScore {
  const delta = toDense(update);
  if (delta.length !== base.length) throw new Error(`update has ${delta.length} values but the model has ${base.length}`);
  const applied = new Float32Array(base.length);
  for (let i = 0; i < base.length; i++) applied[i] = base[i] - delta[i];
  const before = batchLoss(config, base, batch);
  const after = batchLoss(config, applied, batch);
  const score: UsefulnessScore = { before, after, drop: before - after };
  if (control) score.controlDrop = batchLoss(config, base, control) - batchLoss(config, applied, control);
  return score;
}
