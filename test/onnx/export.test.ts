import { describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-web';
import { initParams, type GptConfig, type MlpConfig } from '../../shared/models/config.ts';
import { exportOnnx } from '../../shared/export/onnx.ts';
import { mlpLogits } from '../../shared/reference/mlp.ts';
import { gptLogits } from '../../shared/reference/gpt.ts';
import { rng } from '../../shared/util/rng.ts';
import { maxAbsDiff, spread } from './helpers.ts';

ort.env.wasm.numThreads = 1;

describe('ONNX export run in onnxruntime-web (wasm)', () => {
  it('MLP logits equal the CPU reference within 1e-4', async () => {
    const config: MlpConfig = { kind: 'mlp', inputs: 784, hidden: [64, 32], classes: 10 };
    const params = initParams(config, 7);
    const n = 5, r = rng(8);
    const x = Float32Array.from({ length: n * 784 }, () => r.next());
    const session = await ort.InferenceSession.create(exportOnnx(config, params));
    const out = await session.run({ x: new ort.Tensor('float32', x, [n, 784]) });
    expect(out.logits.dims).toEqual([n, 10]);
    expect(maxAbsDiff(out.logits.data as Float32Array, mlpLogits(config, params, x, n))).toBeLessThan(1e-4);
    await session.release();
  });

  it('GPT logits equal the CPU reference within 1e-4, at full context and a shorter seqLen', async () => {
    const config: GptConfig = { kind: 'gpt', vocab: 29, context: 12, layers: 2, heads: 4, width: 32 };
    const params = spread(config, 3);
    const n = 3, r = rng(4);
    for (const seqLen of [config.context, 5]) {
      const tokens = Int32Array.from({ length: n * seqLen }, () => r.int(config.vocab));
      const session = await ort.InferenceSession.create(exportOnnx(config, params, { seqLen }));
      const feed = new ort.Tensor('int64', BigInt64Array.from(tokens, (t) => BigInt(t)), [n, seqLen]);
      const out = await session.run({ tokens: feed });
      expect(out.logits.dims).toEqual([n, seqLen, config.vocab]);
      const ours = gptLogits(config, params, tokens, n, seqLen);
      const diff = maxAbsDiff(out.logits.data as Float32Array, ours);
      expect(diff).toBeLessThan(1e-4);
      await session.release();
    }
  });

  it('refuses params of the wrong size and a seqLen beyond the context', () => {
    const config: GptConfig = { kind: 'gpt', vocab: 5, context: 4, layers: 1, heads: 2, width: 8 };
    const params = initParams(config, 1);
    expect(() => exportOnnx(config, params.subarray(2))).toThrow(/params: got .* needs/);
    expect(() => exportOnnx(config, params, { seqLen: 5 })).toThrow(/seqLen must be an integer in \[1, context=4\]/);
  });
});
