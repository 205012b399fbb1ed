import { describe, expect, it } from 'vitest';
import { initParams, paramCount, paramLayout, type GptConfig } from '../../shared/models/config.ts';
import { gptLogits, gptLossAndGrad } from '../../shared/reference/gpt.ts';
import { rng } from '../../shared/util/rng.ts';

const config: GptConfig = { kind: 'gpt', vocab: 7, context: 5, layers: 2, heads: 2, width: 8 };

/** Random params with larger scale than the init (and non-trivial LN gains) so every path carries gradient. */
function randomParams(c: GptConfig, seed: number): Float32Array {
  const r = rng(seed);
  const p = new Float32Array(paramCount(c));
  for (const s of paramLayout(c)) {
    for (let i = 0; i < s.size; i++) p[s.offset + i] = s.init.kind === 'ones' ? 1 + 0.3 * r.normal() : 0.4 * r.normal();
  }
  return p;
}

function randomTokens(c: GptConfig, n: number, len: number, seed: number): Int32Array {
  const r = rng(seed);
  return Int32Array.from({ length: n * len }, () => r.int(c.vocab));
}

describe('CPU reference GPT', () => {
  it('backward matches central finite differences on every parameter', () => {
    const params = randomParams(config, 3);
    const n = 3;
    const tokens = randomTokens(config, n, config.context + 1, 4);
    const { grad } = gptLossAndGrad(config, params, tokens, n);
    const h = 1e-3;
    let worst = 0;
    for (let i = 0; i < params.length; i++) {
      const keep = params[i];
      params[i] = keep + h; const up = gptLossAndGrad(config, params, tokens, n).loss;
      params[i] = keep - h; const down = gptLossAndGrad(config, params, tokens, n).loss;
      params[i] = keep;
      const fd = (up - down) / (2 * h);
      worst = Math.max(worst, Math.abs(fd - grad[i]) / (Math.abs(fd) + 1e-3));
    }
    expect(worst).toBeLessThan(1e-3);
    // The gradient is not trivially zero anywhere it should not be.
    for (const s of paramLayout(config)) {
      const g = grad.subarray(s.offset, s.offset + s.size);
      expect(g.some((v) => v !== 0), s.name).toBe(true);
    }
  });

  it('starts near ln(vocab) loss with the GPT-2 init', () => {
    const c: GptConfig = { kind: 'gpt', vocab: 65, context: 16, layers: 2, heads: 4, width: 32 };
    const { loss } = gptLossAndGrad(c, initParams(c, 1), randomTokens(c, 2, c.context + 1, 9), 2);
    expect(Math.abs(loss - Math.log(65))).toBeLessThan(0.05);
  });

  it('logits agree with the loss and are causal', () => {
    const params = randomParams(config, 5);
    const n = 2, T = config.context, V = config.vocab;
    const tokens = randomTokens(config, n, T + 1, 6);
    const inputs = new Int32Array(n * T);
    for (let s = 0; s < n; s++) inputs.set(tokens.subarray(s * (T + 1), s * (T + 1) + T), s * T);
    const logits = gptLogits(config, params, inputs, n, T);
    expect(logits.length).toBe(n * T * V);
    let loss = 0;
    for (let r = 0; r < n * T; r++) {
      const row = Array.from(logits.subarray(r * V, (r + 1) * V));
      const max = Math.max(...row);
      const lse = Math.log(row.reduce((a, v) => a + Math.exp(v - max), 0)) + max;
      loss += lse - row[tokens[Math.floor(r / T) * (T + 1) + (r % T) + 1]];
    }
    expect(loss / (n * T)).toBeCloseTo(gptLossAndGrad(config, params, tokens, n).loss, 5);
    // A prefix gives the same logits as the first positions of the full sequence.
    const prefix = gptLogits(config, params, inputs.subarray(0, 3), 1, 3);
    for (let i = 0; i < prefix.length; i++) expect(prefix[i]).toBeCloseTo(logits[i], 6);
  });

  it('refuses bad input with a message naming the field', () => {
    const params = randomParams(config, 1);
    expect(() => gptLossAndGrad(config, params, new Int32Array(5), 1)).toThrow(/tokens: got 5 ids/);
    expect(() => gptLossAndGrad(config, params, Int32Array.from([0, 1, 2, 3, 4, 7]), 1)).toThrow(/tokens\[5\] = 7 is outside the vocab/);
    expect(() => gptLossAndGrad(config, params.subarray(1), new Int32Array(6), 1)).toThrow(/params: got/);
    expect(() => gptLogits(config, params, new Int32Array(6), 1, 6)).toThrow(/seqLen must be/);
    expect(() => gptLogits({ ...config, heads: 3 }, params, new Int32Array(5), 1)).toThrow(/multiple of heads/);
  });
});
