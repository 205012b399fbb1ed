// The MLP's config, its job.json shape and its tensors: [in, out] row-major weights (y = x·W + b), He init.
import { Type, type Static } from '@sinclair/typebox';
import type { TensorSpec } from '../layout.ts';

export type MlpConfig = { kind: 'mlp'; inputs: number; hidden: number[]; classes: number };

export const MlpConfigSchema = Type.Object({
  kind: Type.Literal('mlp'), inputs: Type.Integer({ minimum: 1 }), hidden: Type.Array(Type.Integer({ minimum: 1 })), classes: Type.Integer({ minimum: 2 }),
});

/** The data decides inputs and classes. */
export const MlpSubmission = Type.Object({
  kind: Type.Literal('mlp'),
  hidden: Type.Array(Type.Integer({ minimum: 1, maximum: 8192 }), { maxItems: 8, description: 'hidden layer widths' }),
}, { additionalProperties: false });
export type MlpSubmission = Static<typeof MlpSubmission>;

/** Default job's model: a 784-128-10 MLP on MNIST digits. */
export const defaultMlp: MlpConfig = { kind: 'mlp', inputs: 784, hidden: [128], classes: 10 };

export function mlpTensors(config: MlpConfig): TensorSpec[] {
  const dims = [config.inputs, ...config.hidden, config.classes];
  const specs: TensorSpec[] = [];
  for (let i = 0; i + 1 < dims.length; i++) {
    specs.push({ name: `l${i}.w`, shape: [dims[i], dims[i + 1]], init: { kind: 'normal', std: Math.sqrt(2 / dims[i]) } });
    specs.push({ name: `l${i}.b`, shape: [dims[i + 1]], init: { kind: 'zeros' } });
  }
  return specs;
}
