import { describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-web';
import { initParams, type GptConfig, type MlpConfig } from '../../shared/models/config.ts';
import { exportOnnx } from '../../shared/export/onnx.ts';
import { webGpuLogits } from '../../shared/engine/trainer.ts';
import { nodeGpu } from '../../server/gpu/dawn.ts';
import { rng } from '../../shared/util/rng.ts';
import { maxAbsDiff, spread } from './helpers.ts';

ort.env.wasm.numThreads = 1;

// An independent check of the engine's forward pass: onnxruntime-web runs the exported graph.
describe('ONNX export vs the WebGPU engine (Node, Dawn)', () => {
  it('MLP: onnxruntime-web logits equal the engine logits within 1e-4', async () => {
    const config: MlpConfig = { kind: 'mlp', inputs: 784, hidden: [100], classes: 10 };
    const params = initParams(config, 21);
    const n = 7, r = rng(22);
    const x = Float32Array.from({ length: n * 784 }, () => r.next());
    const y = Int32Array.from({ length: n }, () => r.int(10));
    const ours = await webGpuLogits(await nodeGpu(), config, params, { kind: 'labelled', x, y, n });
    const session = await ort.InferenceSession.create(exportOnnx(config, params));
    const out = await session.run({ x: new ort.Tensor('float32', x, [n, 784]) });
    expect(maxAbsDiff(out.logits.data as Float32Array, ours)).toBeLessThan(1e-4);
    await session.release();
  });

  it('GPT: onnxruntime-web logits equal the engine logits within 1e-4', async () => {
    const config: GptConfig = { kind: 'gpt', vocab: 37, context: 20, layers: 2, heads: 4, width: 32 };
    const params = spread(config, 23);
    const n = 3, T = config.context, r = rng(24);
    const tokens = Int32Array.from({ length: n * (T + 1) }, () => r.int(config.vocab));
    const ours = await webGpuLogits(await nodeGpu(), config, params, { kind: 'tokens', tokens, n });
    const inputs = new BigInt64Array(n * T);
    for (let s = 0; s < n; s++) for (let t = 0; t < T; t++) inputs[s * T + t] = BigInt(tokens[s * (T + 1) + t]);
    const session = await ort.InferenceSession.create(exportOnnx(config, params));
    const out = await session.run({ tokens: new ort.Tensor('int64', inputs, [n, T]) });
    expect(out.logits.dims).toEqual([n, T, config.vocab]);
    expect(maxAbsDiff(out.logits.data as Float32Array, ours)).toBeLessThan(1e-4);
    await session.release();
  });
});
