// The GPT's config, its job.json shape and its tensors: GPT-2 layout (pre-norm blocks, fused qkv, 4× MLP,
// GELU tanh, untied head) with GPT-2 init.
import { Type, type Static } from '@sinclair/typebox';
import type { Init, TensorSpec } from '../layout.ts';

export type GptConfig = { kind: 'gpt'; vocab: number; context: number; layers: number; heads: number; width: number };

export const GptConfigSchema = Type.Object({
  kind: Type.Literal('gpt'), vocab: Type.Integer({ minimum: 2 }), context: Type.Integer({ minimum: 1 }),
  layers: Type.Integer({ minimum: 1 }), heads: Type.Integer({ minimum: 1 }), width: Type.Integer({ minimum: 1 }),
});

/** Longest context a job may ask for (jobs/spec.ts LIMITS.gptContext). */
export const maxContext = 1024;

/** The tokenizer decides the vocabulary; a stated one must match it. */
export const GptSubmission = Type.Object({
  kind: Type.Literal('gpt'),
  context: Type.Integer({ minimum: 2, maximum: maxContext }),
  layers: Type.Integer({ minimum: 1, maximum: 48 }),
  heads: Type.Integer({ minimum: 1, maximum: 64 }),
  width: Type.Integer({ minimum: 2, maximum: 4096 }),
  vocab: Type.Optional(Type.Integer({ minimum: 2, description: 'optional: must equal the tokenizer\'s vocabulary (bpe 50257, byte 256, char: the corpus\'s distinct characters)' })),
}, { additionalProperties: false });
export type GptSubmission = Static<typeof GptSubmission>;

/** Largest head size (width / heads) the attention kernels take: per-thread arrays of this many floats. */
export const maxHeadSize = 256;

/** Most bytes one chunk of logits may take (64 MiB: 333 rows of GPT-2's 50,257-token vocabulary). */
export const logitChunkBytes = 64 * 2 ** 20;

/** Rows of logits computed at once out of `rows`, so that rows × classes × 4 stays within logitChunkBytes. */
export function logitChunkRows(rows: number, classes: number, override?: number): number {
  if (override !== undefined) {
    if (!Number.isInteger(override) || override < 1) throw new Error(`logitChunkRows must be a positive integer, got ${override}`);
    return Math.min(rows, override);
  }
  return Math.max(1, Math.min(rows, Math.floor(logitChunkBytes / (4 * classes))));
}

export function gptTensors(config: GptConfig): TensorSpec[] {
  const specs: TensorSpec[] = [];
  const add = (name: string, shape: number[], init: Init) => specs.push({ name, shape, init });
  const { vocab, context, layers, width: w } = config;
  const std = 0.02, projStd = 0.02 / Math.sqrt(2 * layers);
  add('wte', [vocab, w], { kind: 'normal', std });
  add('wpe', [context, w], { kind: 'normal', std });
  for (let l = 0; l < layers; l++) {
    add(`h${l}.ln1.g`, [w], { kind: 'ones' });
    add(`h${l}.ln1.b`, [w], { kind: 'zeros' });
    add(`h${l}.attn.wqkv`, [w, 3 * w], { kind: 'normal', std });
    add(`h${l}.attn.bqkv`, [3 * w], { kind: 'zeros' });
    add(`h${l}.attn.wo`, [w, w], { kind: 'normal', std: projStd });
    add(`h${l}.attn.bo`, [w], { kind: 'zeros' });
    add(`h${l}.ln2.g`, [w], { kind: 'ones' });
    add(`h${l}.ln2.b`, [w], { kind: 'zeros' });
    add(`h${l}.mlp.w1`, [w, 4 * w], { kind: 'normal', std });
    add(`h${l}.mlp.b1`, [4 * w], { kind: 'zeros' });
    add(`h${l}.mlp.w2`, [4 * w, w], { kind: 'normal', std: projStd });
    add(`h${l}.mlp.b2`, [w], { kind: 'zeros' });
  }
  add('lnf.g', [w], { kind: 'ones' });
  add('lnf.b', [w], { kind: 'zeros' });
  add('head.w', [w, vocab], { kind: 'normal', std });
  return specs;
}
