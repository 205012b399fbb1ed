// The GPT model kind: a GPT-2-style decoder on token windows of a text corpus. runtime.ts holds its engine
// plan, CPU reference and ONNX export.
import { defineModelKind } from '../kind.ts';
import { GptConfigSchema, GptSubmission, gptTensors, logitChunkRows, maxHeadSize, type GptConfig } from './config.ts';

export const gpt = defineModelKind<GptConfig, GptSubmission>({
  schema: GptConfigSchema,
  submission: GptSubmission,
  dataFormat: 'text',
  wrongFormat: 'a gpt model trains on a text corpus: use "text"',
  tensors: gptTensors,
  tokensPerRow: (c) => c.context,
  checkSubmission: (s) => (s.width % s.heads !== 0
    ? { field: 'model.width', problem: `must be a multiple of model.heads (${s.heads}); got ${s.width}` }
    : undefined),
  fromSubmission(s, data) {
    const vocab = data.kind === 'text' ? data.vocab : 0;
    if (s.vocab !== undefined && s.vocab !== vocab) {
      const source = data.kind === 'text' && data.source ? data.source : 'the tokenized corpus';
      return { field: 'model.vocab', problem: `is ${s.vocab}, but ${source} has ${vocab} tokens; set it to ${vocab} or leave it out` };
    }
    return { kind: 'gpt', vocab, context: s.context, layers: s.layers, heads: s.heads, width: s.width };
  },
  checkShape: (c) => (c.width / c.heads > maxHeadSize
    ? { field: 'model.heads', problem: `gives a head size of width/heads = ${c.width / c.heads}, over the ${maxHeadSize} the engine's attention holds per thread; use at least ${Math.ceil(c.width / maxHeadSize)} heads` }
    : undefined),
  shapeFields: 'model.layers, model.width or model.context',
  /** × context per row: only volunteers run GPT tasks (no relay rerun), so the cap is what a GPU tab
   * finishes well within a lease, not what the relay's CPU can afford. */
  taskLimit: { multiplyAdds: 1e12, what: 'a GPT' },
  planBuffers(c, n, add, chunkOverride) {
    const { vocab: V, context: T, layers: L, heads: H, width: w } = c;
    const R = n * T, stats = n * H * T;
    const chunk = logitChunkRows(R, V, chunkOverride);
    add('gpt.ints', 'scratch', 3 * R + V + 1);
    for (let l = 0; l <= L; l++) add(`gpt.x${l}`, 'activations', R * w);
    for (let l = 0; l < L; l++) {
      const b = (s: string, floats: number) => add(`gpt.h${l}.${s}`, 'activations', floats);
      b('ln1', R * w); b('s1', 2 * R); b('qkv', R * 3 * w); b('lse', stats); b('att', R * w); b('xa', R * w);
      b('ln2', R * w); b('s2', 2 * R); b('hpre', R * 4 * w); b('h', R * 4 * w);
    }
    add('gpt.lnf', 'activations', R * w);
    add('gpt.sf', 'activations', 2 * R);
    add('gpt.logits', 'logits', chunk * V);
    for (const s of ['dx', 'dxa', 'dln', 'datt']) add(`gpt.${s}`, 'scratch', R * w);
    add('gpt.dh', 'scratch', R * 4 * w);
    add('gpt.dqkv', 'scratch', R * 3 * w);
    add('gpt.rowDot', 'scratch', stats);
    add('rowLoss', 'scratch', R);
    return chunk;
  },
  // the embedding gather/scatter and the head's three matmuls run per row range (engine/models/gpt.ts)
  splitTensors: () => ['wte', 'head.w'],
  describe: (c, o = {}) => (o.long
    ? `GPT: ${c.layers} layers, width ${c.width}, ${c.heads} heads, context ${c.context}, vocabulary ${c.vocab}${o.tokenizer ? ` (${o.tokenizer}s)` : ''}`
    : `GPT ${c.layers} layers × ${c.width}`),
  accuracyLabel: 'next-token accuracy',
  relayEvaluates: false,
  relayReruns: false,
});
