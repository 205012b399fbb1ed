// The relay's GPT evaluation stays within its budget: small models on 32 held-out windows, larger ones on
// fewer (at least one), and the figure is the reference's over exactly those windows.
import { describe, expect, it } from 'vitest';
import { EVAL_MULTIPLY_ADDS, evalWindows, gptEvaluate } from '../../server/ops/eval-gpt.ts';
import { initParams, paramCount, type GptConfig } from '../../shared/models/config.ts';
import { gptEvaluate as evaluateWindows } from '../../shared/reference/gpt.ts';
import { tokenWindows } from '../../shared/data/token-shard.ts';

const gpt = (width: number, layers: number, context: number): GptConfig => ({ kind: 'gpt', vocab: 64, context, layers, heads: 2, width });

describe('GPT evaluation budget', () => {
  it('takes 32 windows of a small model, fewer of a larger one, and one of a model over budget', () => {
    expect(evalWindows(gpt(16, 1, 16))).toBe(32);
    const mid = gpt(96, 3, 64);
    const k = evalWindows(mid);
    expect(k).toBe(Math.floor(EVAL_MULTIPLY_ADDS / (paramCount(mid) * 64)));
    expect(k).toBeGreaterThan(1);
    expect(k).toBeLessThan(32);
    expect(evalWindows(gpt(1024, 24, 1024))).toBe(1);
  });

  it('reports the reference loss over exactly the windows it takes', () => {
    const config = gpt(96, 3, 64), params = initParams(config, 3);
    const tokens = Int32Array.from({ length: 64 * 40 }, (_, i) => (i * 7 + (i >> 3)) % 64);
    const k = evalWindows(config);
    const b = tokenWindows({ vocab: 64, tokens }, 64, k);
    if (b.kind !== 'tokens') throw new Error('token windows expected');
    expect(b.n).toBe(k);
    expect(gptEvaluate(config, params, { vocab: 64, tokens })).toEqual(evaluateWindows(config, params, b.tokens, b.n));
  });
});
