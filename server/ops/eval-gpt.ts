// Held-out evaluation of GPT versions (the relay evaluates MLPs itself): mean next-token cross-entropy
// and next-token accuracy over the first non-overlapping windows of the held-out text, on the CPU reference.
// It runs on the relay's event loop, so a version's evaluation has a budget: larger models are evaluated
// on fewer windows (down to one), not for longer.
import { paramCount, type GptConfig } from '../../shared/models/config.ts';
import { gptEvaluate as evaluateWindows } from '../../shared/reference/gpt.ts';
import { tokenWindows, type TokenShard } from '../../shared/data/token-shard.ts';

/** Multiply-adds one evaluation may spend (a forward pass costs about one per parameter per token): about
 * 0.25 s of the CPU reference on a small 2-core machine (3e8 took 1.5 s there). */
export const EVAL_MULTIPLY_ADDS = 5e7;

/** Held-out windows a version of this model is evaluated on: up to maxWindows, within the budget, at least one. */
export function evalWindows(config: GptConfig, maxWindows = 32): number {
  return Math.max(1, Math.min(maxWindows, Math.floor(EVAL_MULTIPLY_ADDS / (paramCount(config) * config.context))));
}

export function gptEvaluate(config: GptConfig, params: Float32Array, heldOut: TokenShard, maxWindows = 32): { loss: number; accuracy: number } {
  const b = tokenWindows(heldOut, config.context, evalWindows(config, maxWindows));
  if (b.kind !== 'tokens' || b.n === 0) throw new Error(`held-out text has fewer than context + 1 = ${config.context + 1} tokens`);
  return evaluateWindows(config, params, b.tokens, b.n);
}
