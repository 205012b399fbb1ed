// The model kinds, one line each: a new kind is a folder (shared/models/<kind>/: config.ts, index.ts,
// runtime.ts) plus its line here and in runtime.ts. The key is the config's kind literal (test/models/
// registry.test.ts checks it); the protocol's model union and the spec's submission union are made from
// these entries, and every part that differs by kind reads its entry instead of testing the kind.
import { Type } from '@sinclair/typebox';
import type { ModelKind } from './kind.ts';
import { gpt } from './gpt/index.ts';
import { mlp } from './mlp/index.ts';

export const modelKinds = {
  mlp,
  gpt,
} as const;

type Kinds = typeof modelKinds;
export type ModelKindName = keyof Kinds;
type ConfigOf<K> = K extends ModelKind<infer C, infer _S> ? C : never;
type SubmissionOf<K> = K extends ModelKind<infer _C, infer S> ? S : never;
/** A full model config, any kind. */
export type ModelConfig = { [K in ModelKindName]: ConfigOf<Kinds[K]> }[ModelKindName];
/** A job.json model, any kind. */
export type ModelSubmission = { [K in ModelKindName]: SubmissionOf<Kinds[K]> }[ModelKindName];

export const modelKindNames = Object.keys(modelKinds) as ModelKindName[];
// Unsafe only gives the union its static type (the entries' schemas are typed as plain objects); the schema
// itself is the union of the entries', checked as any other.
export const ModelSchema = Type.Unsafe<ModelConfig>(Type.Union(modelKindNames.map((k) => modelKinds[k].schema)));
export const ModelSubmissionSchema = Type.Unsafe<ModelSubmission>(Type.Union(modelKindNames.map((k) => modelKinds[k].submission)));

/** The entry for a config's (or submission's) kind, typed for it. */
export function kindOf(m: { kind: ModelKindName }): ModelKind<ModelConfig, ModelSubmission> {
  if (!Object.hasOwn(modelKinds, m.kind)) throw new Error(`unknown model kind ${JSON.stringify(m.kind)}; known: ${modelKindNames.join(', ')}`);
  return modelKinds[m.kind] as unknown as ModelKind<ModelConfig, ModelSubmission>;
}
