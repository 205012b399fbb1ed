// The model zoo's configs and the one flat parameter layout every part agrees on:
// the WebGPU engine, the CPU reference, the relay's outer optimizer, the codec and the ONNX export.
import { rng } from '../util/rng.ts';

export type MlpConfig = { kind: 'mlp'; inputs: number; hidden: number[]; classes: number };
export type GptConfig = { kind: 'gpt'; vocab: number; context: number; layers: number; heads: number; width: number };
export type ModelConfig = MlpConfig | GptConfig;

export type ParamSpec = { name: string; shape: number[]; offset: number; size: number; init: Init };
type Init = { kind: 'zeros' } | { kind: 'ones' } | { kind: 'normal'; std: number };

/** Default job's model: a 784-128-10 MLP on MNIST digits. */
export const defaultMlp: MlpConfig = { kind: 'mlp', inputs: 784, hidden: [128], classes: 10 };

export function paramLayout(config: ModelConfig): ParamSpec[] {
  const specs: Omit<ParamSpec, 'offset' | 'size'>[] = [];
  const add = (name: string, shape: number[], init: Init) => specs.push({ name, shape, init });
  if (config.kind === 'mlp') {
    // Weights are [in, out] row-major: y = x·W + b.
    const dims = [config.inputs, ...config.hidden, config.classes];
    for (let i = 0; i + 1 < dims.length; i++) {
      add(`l${i}.w`, [dims[i], dims[i + 1]], { kind: 'normal', std: Math.sqrt(2 / dims[i]) });
      add(`l${i}.b`, [dims[i + 1]], { kind: 'zeros' });
    }
  } else {
    // GPT-2 layout (pre-norm blocks, fused qkv, 4× MLP, GELU tanh, untied head), GPT-2 init.
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
  }
  let offset = 0;
  return specs.map((s) => {
    const size = s.shape.reduce((a, b) => a * b, 1);
    const spec = { ...s, offset, size };
    offset += size;
    return spec;
  });
}

export function paramCount(config: ModelConfig): number {
  const layout = paramLayout(config);
  const last = layout[layout.length - 1];
  return last.offset + last.size;
}

/** Named views into one flat parameter (or gradient) buffer. */
export function views(config: ModelConfig, flat: Float32Array): Record<string, Float32Array> {
  const out: Record<string, Float32Array> = {};
  for (const p of paramLayout(config)) out[p.name] = flat.subarray(p.offset, p.offset + p.size);
  return out;
}

export function initParams(config: ModelConfig, seed: number): Float32Array {
  const r = rng(seed);
  const flat = new Float32Array(paramCount(config));
  for (const p of paramLayout(config)) {
    const v = flat.subarray(p.offset, p.offset + p.size);
    if (p.init.kind === 'ones') v.fill(1);
    else if (p.init.kind === 'normal') for (let i = 0; i < v.length; i++) v[i] = r.normal() * p.init.std;
  }
  return flat;
}
