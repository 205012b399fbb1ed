// Kinds live in tables: model kinds (shared/models/registry.ts, runtimes.ts), codecs (shared/codec/registry.ts)
// and aggregators (shared/aggregate/registry.ts). The protocol's and the spec's unions are made from them,
// so a new entry needs no edit there; these tests hold the unions to the tables' keys, and keep the light
// model table free of the engine, the CPU reference and the exports (pages import it).
import { readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { aggregatorNames, defaultAggregator, preAggregatorNames } from '../../shared/aggregate/index.ts';
import { codecByCode, codecNames, codecs, CompressionSchema } from '../../shared/codec/registry.ts';
import { defaultCompression, decodeUpdate, encodeUpdate, readHeader } from '../../shared/codec/index.ts';
import { checkSubmission, defaultHyperparameters, JobSubmissionSchema, SpecError } from '../../shared/jobs/spec.ts';
import { modelKindNames, modelKinds, ModelSchema, ModelSubmissionSchema } from '../../shared/models/registry.ts';
import { modelRuntimes } from '../../shared/models/runtimes.ts';
import { AggregatorSchema, HyperparametersSchema, PreAggregatorSchema } from '../../shared/protocol/messages.ts';

type Lit = { properties?: { kind?: { const?: unknown } }; const?: unknown };
const kindsOf = (u: { anyOf: Lit[] }) => u.anyOf.map((s) => s.properties?.kind?.const);
const constsOf = (u: { anyOf: Lit[] }) => u.anyOf.map((s) => s.const);

describe('model kinds', () => {
  it('the protocol\'s model union and the spec\'s submission union are the registry\'s kinds, in its order', () => {
    expect(modelKindNames).toEqual(expect.arrayContaining(['mlp', 'gpt'])); // a new kind needs no edit here
    expect(kindsOf(ModelSchema as unknown as { anyOf: Lit[] })).toEqual(modelKindNames);
    expect(kindsOf(ModelSubmissionSchema as unknown as { anyOf: Lit[] })).toEqual(modelKindNames);
    expect(JobSubmissionSchema.properties.model).toBe(ModelSubmissionSchema);
  });

  it('each entry is keyed by its own kind literal, and every kind has a runtime', () => {
    for (const k of modelKindNames) {
      expect(modelKinds[k].schema.properties.kind.const).toBe(k);
      expect(modelKinds[k].submission.properties.kind.const).toBe(k);
    }
    expect(Object.keys(modelRuntimes).sort()).toEqual([...modelKindNames].sort());
  });

  it('the spec refuses a kind outside the registry, naming every kind it has', () => {
    const job = { name: 'x', model: { kind: 'rnn' }, dataset: { format: 'text', tokenizer: 'byte' } };
    expect(() => checkSubmission(job)).toThrow(SpecError);
    expect(() => checkSubmission(job)).toThrow(`model.kind: must be one of ${modelKindNames.map((k) => `"${k}"`).join(', ')} (got "rnn")`);
  });

  it('the light table reaches no engine plan, CPU reference or export code (pages import it)', () => {
    const reached = valueImports('shared/models/registry.ts');
    expect(reached).toContain('shared/models/gpt/config.ts'); // the walk follows real imports
    expect(reached.filter((f) => /^shared\/(engine|reference|export|train)\/|\/(runtime|onnx)\.ts$/.test(f))).toEqual([]);
  });
});

describe('codecs', () => {
  it('the compression union is the registry\'s codecs, each keyed by its own kind literal, with distinct header codes', () => {
    expect(codecNames).toEqual(expect.arrayContaining(['fp32', 'int8', 'topk'])); // a new codec needs no edit here
    expect(kindsOf(CompressionSchema as unknown as { anyOf: Lit[] })).toEqual(codecNames);
    expect(HyperparametersSchema.properties.compression).toBe(CompressionSchema);
    for (const n of codecNames) expect(codecs[n].schema.properties.kind.const).toBe(n);
    expect(codecByCode.size).toBe(codecNames.length);
  });

  it('a frame names its codec by header code, and decodes through that codec', () => {
    const x = Float32Array.from({ length: 300 }, (_, i) => Math.sin(i));
    for (const c of [{ kind: 'fp32' as const }, defaultCompression, { kind: 'topk' as const, fraction: 0.1, bits: 8 as const }]) {
      const bytes = encodeUpdate(x, c);
      expect(bytes[5]).toBe(codecs[c.kind].code);
      expect(readHeader(bytes).kind).toBe(c.kind);
      expect(decodeUpdate(bytes, x.length).kind).toBe(c.kind === 'topk' ? 'sparse' : 'dense');
    }
  });

  it('the spec refuses a compression kind outside the registry, naming every codec', () => {
    const job = { name: 'x', model: { kind: 'mlp', hidden: [8] }, dataset: { format: 'labelled' }, hyperparameters: { compression: { kind: 'zstd' } } };
    expect(() => checkSubmission(job)).toThrow(`hyperparameters.compression.kind: must be one of ${codecNames.map((k) => `"${k}"`).join(', ')} (got "zstd")`);
  });
});

describe('aggregators', () => {
  it('the aggregator and pre-aggregator unions are the registry\'s names', () => {
    expect(constsOf(AggregatorSchema as unknown as { anyOf: Lit[] })).toEqual(aggregatorNames);
    expect(constsOf(PreAggregatorSchema as unknown as { anyOf: Lit[] })).toEqual(preAggregatorNames);
    expect(HyperparametersSchema.properties.aggregator).toBe(AggregatorSchema);
  });

  it('the job defaults are the registries\' defaults, written once', () => {
    expect(defaultHyperparameters.aggregator).toBe(defaultAggregator);
    expect(defaultHyperparameters.compression).toBe(defaultCompression);
  });
});

const root = resolve(import.meta.dirname, '..', '..');

/** Every file reachable from `start` through value imports (type-only imports are erased in bundles). */
function valueImports(start: string): string[] {
  const seen = new Set<string>();
  const walk = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    const text = readFileSync(join(root, file), 'utf8');
    for (const m of text.matchAll(/(?:^|\n)\s*(import|export)\s+(?!type\s)[^'"]*?from\s*['"](\.[^'"]+)['"]/g)) {
      walk(relative(root, resolve(dirname(join(root, file)), m[2])));
    }
  };
  walk(start);
  return [...seen];
}
