// Held-out evaluation of GPT versions (the relay evaluates MLPs itself): mean next-token cross-entropy
// and next-token accuracy over the first non-overlapping windows of the held-out text, on the CPU reference.
import type { GptConfig } from '../../shared/models/config.ts';
import { gptEvaluate as evaluateWindows } from '../../shared/reference/gpt.ts';
import { tokenWindows, type TokenShard } from '../../shared/data/token-shard.ts';

export function gptEvaluate(config: GptConfig, params: Float32Array, heldOut: TokenShard, maxWindows = 32): { loss: number; accuracy: number } {
  const b = tokenWindows(heldOut, config.context, maxWindows);
  if (b.kind !== 'tokens' || b.n === 0) throw new Error(`held-out text has fewer than context + 1 = ${config.context + 1} tokens`);
  return evaluateWindows(config, params, b.tokens, b.n);
}
