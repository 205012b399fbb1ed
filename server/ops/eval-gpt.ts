// Held-out evaluation of GPT versions (the relay evaluates MLPs itself): mean next-token cross-entropy
// and next-token accuracy over the first non-overlapping windows of the held-out text, on the CPU reference.
import type { GptConfig } from '../../shared/models/config.ts';
import { gptLogits } from '../../shared/reference/gpt.ts';
import { tokenWindows, type TokenShard } from '../../shared/data/token-shard.ts';

export function gptEvaluate(config: GptConfig, params: Float32Array, heldOut: TokenShard, maxWindows = 32): { loss: number; accuracy: number } {
  const b = tokenWindows(heldOut, config.context, maxWindows);
  if (b.kind !== 'tokens' || b.n === 0) throw new Error(`held-out text has fewer than context + 1 = ${config.context + 1} tokens`);
  const T = config.context, V = config.vocab;
  const inputs = new Int32Array(b.n * T);
  for (let s = 0; s < b.n; s++) inputs.set(b.tokens.subarray(s * (T + 1), s * (T + 1) + T), s * T);
  const logits = gptLogits(config, params, inputs, b.n, T);
  let loss = 0, right = 0;
  for (let s = 0; s < b.n; s++) {
    for (let t = 0; t < T; t++) {
      const o = (s * T + t) * V, target = b.tokens[s * (T + 1) + t + 1];
      let max = -Infinity, arg = 0;
      for (let c = 0; c < V; c++) if (logits[o + c] > max) { max = logits[o + c]; arg = c; }
      let sum = 0;
      for (let c = 0; c < V; c++) sum += Math.exp(logits[o + c] - max);
      loss += Math.log(sum) + max - logits[o + target];
      if (arg === target) right++;
    }
  }
  return { loss: loss / (b.n * T), accuracy: right / (b.n * T) };
}
