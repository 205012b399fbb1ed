// Held-out evaluation of GPT versions (the relay evaluates MLPs itself): mean next-token cross-entropy
// and next-token accuracy over a sample of non-overlapping windows spread evenly across the held-out text
// (the same windows for every version, so versions compare), on the CPU reference.
// It runs on a worker thread of the relay's pool (server/pool), never on the event loop, and still has a
// budget, so a worker is never held for long: larger models are evaluated on fewer windows, and a model
// whose one full window is over budget on a shorter window (fewer positions; a causal model's first L
// predictions are the same whatever follows them), never for longer.
import { paramCount, type GptConfig } from '../../shared/models/config.ts';
import { gptEvaluate as evaluateWindows } from '../../shared/reference/gpt.ts';
import type { TokenShard } from '../../shared/data/token-shard.ts';

/** Multiply-adds one evaluation may spend (a forward pass costs about one per parameter per token): about
 * 2 s of one pool worker on a small 2-core machine (5e7 took 0.25 s there). */
export const EVAL_MULTIPLY_ADDS = 4e8;

/** Held-out windows a version of this model is evaluated on: up to maxWindows, within the budget, at least one. */
export function evalWindows(config: GptConfig, maxWindows = 32): number {
  return Math.max(1, Math.min(maxWindows, Math.floor(EVAL_MULTIPLY_ADDS / (paramCount(config) * config.context))));
}

/** What an evaluation reads: `windows` windows of `length` input positions (length < context when one
 * full window is over budget; at least one position, so the cost is bounded by the budget or, for a
 * model over it even then, by one forward position). */
export function evalPlan(config: GptConfig, maxWindows = 32): { windows: number; length: number } {
  const perToken = paramCount(config);
  if (perToken * config.context <= EVAL_MULTIPLY_ADDS) return { windows: evalWindows(config, maxWindows), length: config.context };
  return { windows: 1, length: Math.max(1, Math.min(config.context, Math.floor(EVAL_MULTIPLY_ADDS / perToken))) };
}

/** Where the n windows of `span` ids start in a text of `total` ids: evenly spaced from its start to its
 * end (the first at 0, the last ending at the text's end), so a few windows of a large model still sample
 * the whole held-out text rather than its opening pages; never overlapping (n ≤ ⌊total / span⌋). */
export function evalWindowStarts(total: number, span: number, n: number): number[] {
  if (n <= 1) return n === 1 ? [0] : [];
  const room = total - span;
  return Array.from({ length: n }, (_, i) => Math.floor((i * room) / (n - 1)));
}

/** The held-out ids an evaluation reads (windows of length + 1, one after another), so only these travel to the worker. */
export function evalTokens(config: GptConfig, heldOut: TokenShard, maxWindows = 32): { tokens: Int32Array; n: number; length: number } {
  const plan = evalPlan(config, maxWindows);
  const span = plan.length + 1;
  const n = Math.min(plan.windows, Math.floor(heldOut.tokens.length / span));
  if (n === 0) throw new Error(`held-out text has fewer than ${span} tokens`);
  const tokens = new Int32Array(n * span);
  evalWindowStarts(heldOut.tokens.length, span, n).forEach((at, w) => tokens.set(heldOut.tokens.subarray(at, at + span), w * span));
  return { tokens, n, length: plan.length };
}

/** Mean cross-entropy and accuracy over n windows of length + 1 ids (inputs and next-token targets). */
export function evaluateTokens(config: GptConfig, params: Float32Array, tokens: Int32Array, n: number, length: number): { loss: number; accuracy: number } {
  return evaluateWindows(config, params, tokens, n, length);
}

/** The whole evaluation in one call (tests and the worker): plan, read, evaluate. */
export function gptEvaluate(config: GptConfig, params: Float32Array, heldOut: TokenShard, maxWindows = 32): { loss: number; accuracy: number } {
  const b = evalTokens(config, heldOut, maxWindows);
  return evaluateTokens(config, params, b.tokens, b.n, b.length);
}
