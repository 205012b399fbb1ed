// The model zoo's configs and the one flat parameter layout every part agrees on: the WebGPU engine, the
// CPU reference, the relay's outer optimizer, the codec and the ONNX export. Each kind lists its tensors
// (shared/models/<kind>/config.ts); these functions place them for any kind through the registry.
import { rng } from '../util/rng.ts';
import { placeTensors, type ParamSpec } from './layout.ts';
import { kindOf, type ModelConfig } from './registry.ts';

export type { MlpConfig } from './mlp/config.ts';
export type { GptConfig } from './gpt/config.ts';
export type { ModelConfig } from './registry.ts';
export type { ParamSpec } from './layout.ts';
export { defaultMlp } from './mlp/config.ts';

export function paramLayout(config: ModelConfig): ParamSpec[] {
  return placeTensors(kindOf(config).tensors(config));
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
