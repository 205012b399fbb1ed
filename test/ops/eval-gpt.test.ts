// The relay's GPT evaluation stays within its budget: small models on 32 held-out windows, larger ones on
// fewer (at least one), spread evenly across the whole held-out text; the figure is the reference's over
// exactly those windows.
import { describe, expect, it } from 'vitest';
import { EVAL_MULTIPLY_ADDS, evalTokens, evalWindowStarts, evalWindows, gptEvaluate } from '../../server/ops/eval-gpt.ts';
import { initParams, paramCount, type GptConfig } from '../../shared/models/config.ts';
import { gptEvaluate as evaluateWindows } from '../../shared/reference/gpt.ts';

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

  it('spreads its windows evenly over the whole held-out text, without overlap, the same for every call', () => {
    expect(evalWindowStarts(1000, 10, 1)).toEqual([0]);
    expect(evalWindowStarts(1000, 10, 0)).toEqual([]);
    const starts = evalWindowStarts(10_000, 65, 7);
    expect(starts[0]).toBe(0);
    expect(starts.at(-1)).toBe(10_000 - 65); // the last window ends at the text's end
    for (let i = 1; i < starts.length; i++) expect(starts[i] - starts[i - 1]).toBeGreaterThanOrEqual(65);
    // as many windows as fit: back to back
    expect(evalWindowStarts(650, 65, 10)).toEqual(Array.from({ length: 10 }, (_, i) => 65 * i));

    // a model that gets 3 windows of a long text reads from its beginning, middle and end, not its first pages
    const config = gpt(96, 3, 64);
    const text = { vocab: 64, tokens: Int32Array.from({ length: 64 * 400 }, (_, i) => i % 64) };
    const b = evalTokens(config, text, 3);
    expect(b.n).toBe(3);
    const span = 65, starts3 = evalWindowStarts(text.tokens.length, span, 3);
    expect(starts3[1]).toBeGreaterThan(text.tokens.length / 3);
    for (let w = 0; w < 3; w++) expect(b.tokens.subarray(w * span, (w + 1) * span)).toEqual(text.tokens.subarray(starts3[w], starts3[w] + span));
    expect(evalTokens(config, text, 3)).toEqual(b);
  });

  it('reports the reference loss over exactly the windows it takes', () => {
    const config = gpt(96, 3, 64), params = initParams(config, 3);
    const tokens = Int32Array.from({ length: 64 * 40 }, (_, i) => (i * 7 + (i >> 3)) % 64);
    const k = evalWindows(config);
    const starts = evalWindowStarts(tokens.length, 65, k);
    const windows = new Int32Array(k * 65);
    starts.forEach((at, w) => windows.set(tokens.subarray(at, at + 65), w * 65));
    expect(gptEvaluate(config, params, { vocab: 64, tokens })).toEqual(evaluateWindows(config, params, windows, k));
    // and that is not the first k windows' figure (the text's later windows differ from its first)
    expect(gptEvaluate(config, params, { vocab: 64, tokens })).not.toEqual(evaluateWindows(config, params, tokens.slice(0, k * 65), k));
  });
});
