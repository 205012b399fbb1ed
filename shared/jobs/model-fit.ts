// Whether a job's model trains in a typical volunteer's GPU: the engine's own memory plan (parameters,
// gradient, AdamW state and activations at the job's batch size and context) against the adapter the
// relay assumes (typicalAdapter: 4 GiB in all, 1 GiB per buffer). Replaces a fixed parameter count, so a
// GPT-2-small at batch 1 passes while a small model at a huge batch × context is refused.
import { planMemory, planProblem, typicalAdapter } from '../engine/memory-plan.ts';
import { kindOf } from '../models/registry.ts';
import type { ModelConfig } from '../models/config.ts';
import { SpecError } from './spec.ts';

const gib = (b: number) => `${b / 2 ** 30} GiB`;
const assumed = `a typical volunteer's GPU (the relay assumes ${gib(typicalAdapter.totalBytes)} in all and ${gib(typicalAdapter.bufferBytes)} per buffer)`;

/** Throws a SpecError naming model.heads (head size), hyperparameters.batchSize (when batch 1 would fit) or model. */
export function checkModelFits(model: ModelConfig, batchSize: number): void {
  const kind = kindOf(model);
  const bad = kind.checkShape?.(model);
  if (bad) throw new SpecError(bad.field, bad.problem);
  const problem = planProblem(planMemory(model, batchSize), typicalAdapter);
  if (!problem) return;
  const fitsAtOne = batchSize > 1 && !planProblem(planMemory(model, 1), typicalAdapter);
  if (fitsAtOne) {
    let most = 1;
    while (most * 2 <= batchSize && !planProblem(planMemory(model, most * 2), typicalAdapter)) most *= 2;
    throw new SpecError('hyperparameters.batchSize', `${batchSize} does not fit ${assumed}: ${problem}; lower it (${most} fits)`);
  }
  throw new SpecError('model', `does not fit ${assumed} even at batch size 1: ${problem}; make ${kind.shapeFields} smaller`);
}
