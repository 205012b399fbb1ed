// Each model kind's heavy parts (engine plan, CPU reference, ONNX export), one line per kind; registry.ts
// lists the light parts. Kept apart so that pages describing jobs do not bundle the engine; the type below
// makes a kind without its line here fail to compile.
import type { ModelRuntime } from './kind.ts';
import { gptRuntime } from './gpt/runtime.ts';
import { mlpRuntime } from './mlp/runtime.ts';
import type { ModelConfig, ModelKindName } from './registry.ts';

export const modelRuntimes = {
  mlp: mlpRuntime,
  gpt: gptRuntime,
} satisfies Record<ModelKindName, unknown>;

/** The runtime for a config's kind, typed for it. */
export function runtimeOf(c: ModelConfig): ModelRuntime<ModelConfig> {
  if (!Object.hasOwn(modelRuntimes, c.kind)) throw new Error(`no runtime for model kind ${JSON.stringify(c.kind)}`);
  return modelRuntimes[c.kind] as unknown as ModelRuntime<ModelConfig>;
}
