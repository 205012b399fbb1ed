// What a researcher submits (job.json): a model from the zoo, hyperparameters (any subset; the rest take
// defaults) and how to read the uploaded dataset. The relay derives the parts the data decides (an MLP's
// inputs/classes, a GPT's vocabulary) and checks everything here before a job exists.
// Shared by the submit form (early, field-named errors in the browser) and the relay.
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import {
  AdamWSchema, AggregatorSchema, PreAggregatorSchema, HyperparametersSchema, SwarmSchema, UsefulnessSchema, type Hyperparameters, type Usefulness,
} from '../protocol/messages.ts';
import { paramCount, type ModelConfig } from '../models/config.ts';
import { maxContext } from '../models/gpt/config.ts';
import { kindOf, modelKindNames, modelKinds, ModelSubmissionSchema } from '../models/registry.ts';
import { imageShape } from '../data/augment.ts';
import { codecNames, codecs } from '../codec/registry.ts';
import { defaultCompression } from '../codec/index.ts';
import { defaultAggregator } from '../aggregate/index.ts';
import { checkModelFits } from './model-fit.ts';

export const LIMITS = {
  /** Largest dataset upload, bytes (the relay's body limit is a little above it). */
  datasetBytes: 16 * 1024 * 1024,
  gptContext: maxContext,
  charVocab: 4096,
  shards: 256,
  /** Most multiply-adds the relay spends scoring one update's usefulness (two forward passes of its batch on
   * the CPU reference, which runs ≈ 0.4–0.8 G/s): ≈ 0.1–0.2 s of the relay's event loop per upload. */
  usefulnessMultiplyAdds: 64e6,
  /** Inner steps per task (H) and batch size: DiLoCo uses H in the tens to hundreds; past these a task is no
   * longer "small" (the protocol's schema would take 100,000 and 65,536). */
  steps: 10_000,
  batchSize: 8192,
  /** Most multiply-adds of one task, per kind (each kind's entry says why its cap is what it is). */
  mlpTaskMultiplyAdds: modelKinds.mlp.taskLimit.multiplyAdds,
  gptTaskMultiplyAdds: modelKinds.gpt.taskLimit.multiplyAdds,
  /** Largest fp32 version (4 bytes a parameter) the relay stores: large checkpoints are files beside the
   * SQLite file or chunk rows on Postgres (server/store/checkpoint-files.ts, postgres/chunks.ts), so no
   * database value bounds it any more (SQLite's ~512 MiB did); 2 GiB is 537M parameters (GPT-2 small with
   * its untied head, 163M, is 652 MB), and the relay holds a few fp32 copies of a version while a round closes. */
  versionBytes: 2 * 2 ** 30,
} as const;

const Partial_ = <T extends Parameters<typeof Type.Partial>[0]>(t: T) => Type.Partial(t, { additionalProperties: false });

export { MlpSubmission } from '../models/mlp/config.ts';
export { GptSubmission } from '../models/gpt/config.ts';

/** Vocabularies fixed by the tokenizer (char's is the corpus's); text.ts implements them. */
export const tokenizerVocab = { byte: 256, bpe: 50_257 } as const;

export const TextDataset = Type.Object({
  format: Type.Literal('text'),
  tokenizer: Type.Union([Type.Literal('char'), Type.Literal('byte'), Type.Literal('bpe')], { description: 'char: one token per distinct character; byte: UTF-8 bytes, vocab 256; bpe: GPT-2 BPE, vocab 50,257' }),
  heldOutFraction: Type.Optional(Type.Number({ minimum: 0.01, maximum: 0.5 })),
  shards: Type.Optional(Type.Integer({ minimum: 1, maximum: LIMITS.shards })),
}, { additionalProperties: false });

export const LabelledDataset = Type.Object({
  format: Type.Literal('labelled'),
  heldOutFraction: Type.Optional(Type.Number({ minimum: 0.01, maximum: 0.5 })),
  shards: Type.Optional(Type.Integer({ minimum: 1, maximum: LIMITS.shards })),
}, { additionalProperties: false });

export const GuardrailSchema = Type.Object({
  maxLossRise: Type.Number({ exclusiveMinimum: 0, description: 'pause for review when held-out loss rises more than this (nats) above the best so far' }),
}, { additionalProperties: false });

const HyperparametersInput = Type.Partial(Type.Object({
  ...HyperparametersSchema.properties,
  adamw: Partial_(AdamWSchema),
  usefulness: Partial_(UsefulnessSchema),
}), { additionalProperties: false });

export const JobSubmissionSchema = Type.Object({
  name: Type.String({ minLength: 1, maxLength: 80 }),
  description: Type.Optional(Type.String({ maxLength: 2000 })),
  model: ModelSubmissionSchema,
  hyperparameters: Type.Optional(HyperparametersInput),
  dataset: Type.Union([TextDataset, LabelledDataset]),
  guardrail: Type.Optional(GuardrailSchema),
}, { additionalProperties: false });

export type JobSubmission = Static<typeof JobSubmissionSchema>;
export type TextDatasetSpec = Static<typeof TextDataset>;
export type LabelledDatasetSpec = Static<typeof LabelledDataset>;
export type DatasetSpec = TextDatasetSpec | LabelledDatasetSpec;

export const defaultHyperparameters: Hyperparameters = {
  steps: 20,
  batchSize: 32,
  adamw: { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 },
  clipNorm: 1,
  outerLr: 0.7, // DiLoCo defaults (arXiv 2311.08105)
  outerMomentum: 0.9,
  updatesPerRound: 2,
  quorum: 1,
  roundTimeoutMs: 60_000,
  stalenessBound: 2,
  leaseMs: 120_000,
  compression: defaultCompression,
  aggregator: defaultAggregator, // best worst case over the attack table, IID and non-IID (docs/defence.md)
  maxUpdateNorm: 1000,
  // the relay turns it on for a submitted job whose model it can afford to score (server/defence/default.ts)
  usefulness: { mode: 'off', minDrop: 0 },
};
export const defaultGuardrail = { maxLossRise: 0.5 };
export const defaultHeldOutFraction = 0.1;
export const defaultShards = 4;

/** A refusal that names the field (dotted path, e.g. "hyperparameters.steps") and what to do. */
export class SpecError extends Error {
  override name = 'SpecError';
  constructor(readonly field: string, readonly problem: string) {
    super(`${field}: ${problem}`);
  }
}

const dotted = (path: string) => path.replace(/^\//, '').replace(/\//g, '.') || '(job)';

/** First schema error as a SpecError; unions are narrowed on their tag first, so the message names the real field. */
function firstError(schema: Parameters<typeof Value.Errors>[0], value: unknown, prefix: string): SpecError | undefined {
  const e = Value.Errors(schema, value).First();
  if (!e) return undefined;
  const field = [prefix, dotted(e.path)].filter((s) => s && s !== '(job)').join('.') || '(job)';
  if (e.message.startsWith('Unexpected property')) return new SpecError(field, 'is not a known field; remove it (see docs/jobs.md)');
  return new SpecError(field, `${e.message.toLowerCase()} (got ${JSON.stringify(e.value)?.slice(0, 60)})`);
}

function checkTagged(options: Record<string, Parameters<typeof Value.Errors>[0]>, tag: string, value: unknown, field: string): void {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new SpecError(field, 'must be an object');
  const kind = (value as Record<string, unknown>)[tag];
  const schema = typeof kind === 'string' ? options[kind] : undefined;
  if (!schema) throw new SpecError(`${field}.${tag}`, `must be one of ${Object.keys(options).map((k) => `"${k}"`).join(', ')} (got ${JSON.stringify(kind)})`);
  const err = firstError(schema, value, field);
  if (err) throw err;
}

/** Checks a parsed job.json; returns it typed, or throws a SpecError naming the first bad field. */
export function checkSubmission(input: unknown): JobSubmission {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) throw new SpecError('(job)', 'must be a JSON object with name, model, dataset and optional hyperparameters');
  const o = input as Record<string, unknown>;
  for (const f of ['name', 'model', 'dataset'] as const) if (o[f] === undefined) throw new SpecError(f, 'is required');
  checkTagged(Object.fromEntries(modelKindNames.map((k) => [k, modelKinds[k].submission])), 'kind', o.model, 'model');
  checkTagged({ text: TextDataset, labelled: LabelledDataset }, 'format', o.dataset, 'dataset');
  const h = o.hyperparameters as Record<string, unknown> | undefined;
  for (const f of ['compression', 'versionCompression'] as const) {
    if (h && typeof h === 'object' && h[f] !== undefined) checkTagged(Object.fromEntries(codecNames.map((n) => [n, codecs[n].schema])), 'kind', h[f], `hyperparameters.${f}`);
  }
  if (h && typeof h === 'object' && h.aggregator !== undefined && !Value.Check(AggregatorSchema, h.aggregator)) {
    throw new SpecError('hyperparameters.aggregator', `must be one of ${AggregatorSchema.anyOf.map((a) => `"${a.const}"`).join(', ')} (got ${JSON.stringify(h.aggregator)})`);
  }
  if (h && typeof h === 'object' && Array.isArray(h.preAggregators)) {
    h.preAggregators.forEach((p, i) => {
      if (!Value.Check(PreAggregatorSchema, p)) throw new SpecError(`hyperparameters.preAggregators.${i}`, `must be one of ${PreAggregatorSchema.anyOf.map((a) => `"${a.const}"`).join(', ')} (got ${JSON.stringify(p)})`);
    });
  }
  if (h && typeof h === 'object' && h.swarm !== undefined && h.swarm !== false) {
    // the union's own error says only "expected union value": settings are checked as settings, by field
    if (typeof h.swarm !== 'object' || h.swarm === null || Array.isArray(h.swarm)) throw new SpecError('hyperparameters.swarm', `must be the swarm's settings ({} for its defaults) or false for the round scheduler (got ${JSON.stringify(h.swarm)?.slice(0, 60)})`);
    const err = firstError(SwarmSchema, h.swarm, 'hyperparameters.swarm');
    if (err) throw err;
  }
  const mode = h && typeof h === 'object' && h.usefulness && typeof h.usefulness === 'object' ? (h.usefulness as Record<string, unknown>).mode : undefined;
  if (mode !== undefined && !Value.Check(UsefulnessSchema.properties.mode, mode)) {
    throw new SpecError('hyperparameters.usefulness.mode', `must be one of ${UsefulnessSchema.properties.mode.anyOf.map((a) => `"${a.const}"`).join(', ')} (got ${JSON.stringify(mode)})`);
  }
  const err = firstError(JobSubmissionSchema, input, '');
  if (err) throw err;
  const job = input as JobSubmission;
  const kind = kindOf(job.model);
  const bad = kind.checkSubmission?.(job.model);
  if (bad) throw new SpecError(bad.field, bad.problem);
  if (job.dataset.format !== kind.dataFormat) throw new SpecError('dataset.format', kind.wrongFormat);
  const hp = resolveHyperparameters(job);
  if (hp.augment && !kind.labelledInputs) throw new SpecError('hyperparameters.augment', `shifts labelled image rows; a ${job.model.kind} model trains on ${kind.dataFormat}: remove it`);
  checkKnownVocab(job, hp.batchSize);
  if (hp.quorum > hp.updatesPerRound) throw new SpecError('hyperparameters.quorum', `must not exceed hyperparameters.updatesPerRound (${hp.updatesPerRound}); got ${hp.quorum}`);
  return job;
}

/** A bpe or byte tokenizer's vocabulary is known before the data: the model is then whole, so a stated
 * model.vocab must match it and the model must fit. */
function checkKnownVocab(job: JobSubmission, batchSize: number): void {
  if (job.dataset.format !== 'text') return;
  if (job.dataset.tokenizer === 'char') return; // the corpus decides (resolveModel checks)
  const known = tokenizerVocab[job.dataset.tokenizer];
  const model = kindOf(job.model).fromSubmission(job.model, { kind: 'text', vocab: known, source: `the "${job.dataset.tokenizer}" tokenizer` });
  if ('field' in model) throw new SpecError(model.field, model.problem);
  checkModelFits(model, batchSize);
}

/** Hyperparameters with defaults filled in. */
export function resolveHyperparameters(job: Pick<JobSubmission, 'hyperparameters'>): Hyperparameters {
  const h = job.hyperparameters ?? {};
  return {
    ...defaultHyperparameters, ...h, adamw: { ...defaultHyperparameters.adamw, ...(h.adamw ?? {}) },
    usefulness: { ...defaultHyperparameters.usefulness!, ...(h.usefulness ?? {}) },
  } as Hyperparameters;
}

/** A job's usefulness setting; absent (jobs made before it existed) is off. */
export const usefulnessOf = (h: Hyperparameters): Usefulness => h.usefulness ?? { mode: 'off', minDrop: 0 };

/** Multiply-adds of training one task: forward + backward ≈ 3 × params per row (per token of a GPT), × batch × steps. */
export function taskMultiplyAdds(model: ModelConfig, h: Pick<Hyperparameters, 'steps' | 'batchSize'>): number {
  return 3 * paramCount(model) * h.batchSize * h.steps * kindOf(model).tokensPerRow(model);
}

/** " × context 32" for a kind whose rows are token windows, nothing for rows of features. */
const perRow = (model: ModelConfig): string => {
  const t = kindOf(model).tokensPerRow(model);
  return t > 1 ? ` × context ${t}` : '';
};

/** Once the data has decided the model's full shape: refuses tasks too large to be small, or for the
 * relay to rerun (MLP spot-check tie-breaks), so one task cannot be a denial of service. */
export function checkTaskSize(model: ModelConfig, h: Hyperparameters): void {
  if (h.steps > LIMITS.steps) throw new SpecError('hyperparameters.steps', `must be at most ${LIMITS.steps} (got ${h.steps}); a task is a few minutes of a volunteer's device`);
  if (h.batchSize > LIMITS.batchSize) throw new SpecError('hyperparameters.batchSize', `must be at most ${LIMITS.batchSize} (got ${h.batchSize})`);
  const cost = taskMultiplyAdds(model, h);
  const { multiplyAdds: limit, what } = kindOf(model).taskLimit;
  if (cost > limit) {
    throw new SpecError('hyperparameters.steps', `one task costs ${(cost / 1e9).toFixed(1)} G multiply-adds (3 × ${paramCount(model)} parameters × batchSize ${h.batchSize}`
      + `${perRow(model)} × steps ${h.steps}), over the limit of ${limit / 1e9} G for ${what}; `
      + 'lower hyperparameters.steps or hyperparameters.batchSize, or use a smaller model');
  }
}

/** Once the data has decided the model's full shape: refuses a model whose version the relay cannot store. */
export function checkVersionSize(model: ModelConfig): void {
  const bytes = 4 * paramCount(model);
  if (bytes > LIMITS.versionBytes) {
    throw new SpecError('model', `has ${paramCount(model)} parameters: one version is ${bytes} bytes of fp32, over the ${LIMITS.versionBytes} bytes this relay stores per version; make model.layers, model.width or the vocabulary smaller`);
  }
}

/** Multiply-adds of scoring one update: two forward passes (θ_v and θ_v − Δ) over its batch, ≈ params per
 * row of an MLP or per token of a GPT (attention, softmax and the embedding lookup are left out). */
export function usefulnessMultiplyAdds(model: ModelConfig, batchSize: number): number {
  return 2 * paramCount(model) * batchSize * kindOf(model).tokensPerRow(model);
}

/** Once the data has decided the model's full shape: refuses a usefulness score the relay cannot afford,
 * and an augmentation whose image width does not divide the rows. */
export function checkUsefulness(model: ModelConfig, h: Hyperparameters): void {
  const inputs = kindOf(model).labelledInputs?.(model);
  if (h.augment && inputs !== undefined) {
    try {
      imageShape(inputs, h.augment.width);
    } catch (e) {
      throw new SpecError(h.augment.width === undefined ? 'hyperparameters.augment' : 'hyperparameters.augment.width', (e as Error).message);
    }
  }
  if (usefulnessOf(h).mode === 'off') return;
  const cost = usefulnessMultiplyAdds(model, h.batchSize);
  if (cost > LIMITS.usefulnessMultiplyAdds) {
    const t = kindOf(model).tokensPerRow(model);
    const rows = t > 1 ? `${h.batchSize} × ${t} tokens` : `${h.batchSize} rows`;
    throw new SpecError('hyperparameters.usefulness', `scoring one update costs ${(cost / 1e6).toFixed(0)} M multiply-adds on the relay's CPU `
      + `(2 forward passes of ${rows} through ${paramCount(model)} parameters), over the limit of ${LIMITS.usefulnessMultiplyAdds / 1e6} M; `
      + 'lower hyperparameters.batchSize, use a smaller model, or set usefulness.mode to "off"');
  }
}
