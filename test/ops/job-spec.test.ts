// Job submissions and datasets: what is accepted, and refusals that name the field.
import { describe, expect, test } from 'vitest';
import { checkSubmission, resolveHyperparameters, SpecError, type JobSubmission } from '../../shared/jobs/spec.ts';
import { prepareDataset, resolveModel } from '../../shared/jobs/dataset.ts';
import { decodeTokens, encodeText } from '../../shared/jobs/text.ts';
import { decodeTokenShard, encodeTokenShard, tokenBatchFor } from '../../shared/data/token-shard.ts';

const gptJob = {
  name: 'tiny-shakespeare', model: { kind: 'gpt', context: 16, layers: 1, heads: 2, width: 32 },
  hyperparameters: { steps: 10, adamw: { lr: 0.003 } }, dataset: { format: 'text', tokenizer: 'char', shards: 2 },
};
const fieldOf = (f: () => unknown) => {
  try { f(); } catch (e) { if (e instanceof SpecError) return e.field; throw e; }
  return 'no error';
};
const enc = (s: string) => new TextEncoder().encode(s);

describe('job submission', () => {
  test('accepts a GPT char-level job and fills defaults for the hyperparameters it omits', () => {
    const job = checkSubmission(structuredClone(gptJob));
    const hp = resolveHyperparameters(job);
    expect(hp.steps).toBe(10);
    expect(hp.adamw.lr).toBe(0.003);
    expect(hp.adamw.beta1).toBe(0.9);
    expect(hp.outerLr).toBe(0.7);
    expect(hp.outerMomentum).toBe(0.9);
    expect(hp.usefulness).toEqual({ mode: 'off', minDrop: 0 });
  });

  test('swarm: settings ({} for the defaults) run the swarm scheduler; false or none keep the round scheduler', () => {
    expect(resolveHyperparameters(checkSubmission({ ...gptJob, hyperparameters: { swarm: {} } })).swarm).toEqual({});
    expect(resolveHyperparameters(checkSubmission({ ...gptJob, hyperparameters: { swarm: false } })).swarm).toBe(false);
    expect(resolveHyperparameters(checkSubmission({ ...gptJob, hyperparameters: { swarm: { targetTaskMs: 30_000 } } })).swarm).toEqual({ targetTaskMs: 30_000 });
    expect(resolveHyperparameters(checkSubmission(structuredClone(gptJob))).swarm).toBeUndefined();
  });

  test('usefulness: a mode alone takes the default minDrop; a negative minDrop tolerates a small rise', () => {
    expect(resolveHyperparameters(checkSubmission({ ...gptJob, hyperparameters: { usefulness: { mode: 'enforce' } } })).usefulness).toEqual({ mode: 'enforce', minDrop: 0 });
    expect(resolveHyperparameters(checkSubmission({ ...gptJob, hyperparameters: { usefulness: { mode: 'enforce', minDrop: -0.05 } } })).usefulness).toEqual({ mode: 'enforce', minDrop: -0.05 });
  });

  test.each([
    [{ ...gptJob, name: undefined }, 'name'],
    [{ ...gptJob, model: { ...gptJob.model, kind: 'rnn' } }, 'model.kind'],
    [{ ...gptJob, model: { ...gptJob.model, layers: 0 } }, 'model.layers'],
    [{ ...gptJob, model: { ...gptJob.model, width: 33 } }, 'model.width'],
    [{ ...gptJob, hyperparameters: { steps: -1 } }, 'hyperparameters.steps'],
    [{ ...gptJob, hyperparameters: { adamw: { lr: 'fast' } } }, 'hyperparameters.adamw.lr'],
    [{ ...gptJob, hyperparameters: { compression: { kind: 'zip' } } }, 'hyperparameters.compression.kind'],
    [{ ...gptJob, hyperparameters: { aggregator: 'vote' } }, 'hyperparameters.aggregator'],
    [{ ...gptJob, hyperparameters: { quorum: 5, updatesPerRound: 2 } }, 'hyperparameters.quorum'],
    [{ ...gptJob, hyperparameters: { usefulness: { mode: 'on' } } }, 'hyperparameters.usefulness.mode'],
    [{ ...gptJob, hyperparameters: { usefulness: { mode: 'enforce', minDrop: 'small' } } }, 'hyperparameters.usefulness.minDrop'],
    [{ ...gptJob, hyperparameters: { usefulness: { mode: 'score', batches: 2 } } }, 'hyperparameters.usefulness.batches'],
    [{ ...gptJob, dataset: { format: 'text', tokenizer: 'word' } }, 'dataset.tokenizer'],
    [{ ...gptJob, dataset: { format: 'labelled' } }, 'dataset.format'],
    [{ ...gptJob, colour: 'blue' }, 'colour'],
    [{ ...gptJob, hyperparameters: { swarm: true } }, 'hyperparameters.swarm'],
    [{ ...gptJob, hyperparameters: { swarm: { targetTaskMs: 5 } } }, 'hyperparameters.swarm.targetTaskMs'],
    [{ ...gptJob, hyperparameters: { swarm: { rounds: 3 } } }, 'hyperparameters.swarm.rounds'],
  ])('refuses a bad job naming the field (%#: %s)', (job, field) => {
    expect(fieldOf(() => checkSubmission(job))).toBe(field);
  });
});

describe('datasets', () => {
  test('a text corpus is tokenised by characters, split into shards and a held-out tail, and round-trips', () => {
    const text = 'to be or not to be, that is the question. '.repeat(20);
    const job = checkSubmission(structuredClone(gptJob)) as JobSubmission;
    const d = prepareDataset(job, enc(text));
    if (d.kind !== 'text') throw new Error('expected text');
    expect(d.vocab).toBe(new Set(text).size);
    expect(d.train).toHaveLength(2);
    expect(d.heldOut.tokens.length).toBe(Math.floor(text.length * 0.1));
    expect(decodeTokens(d.tokenizer, d.train[0].tokens).slice(0, 9)).toBe('to be or ');
    const model = resolveModel(job, d);
    expect(model).toMatchObject({ kind: 'gpt', vocab: d.vocab, context: 16 });
    const back = decodeTokenShard(encodeTokenShard(d.train[1]));
    expect(Array.from(back.tokens)).toEqual(Array.from(d.train[1].tokens));
    const batch = tokenBatchFor(back, 16, 7, 0, 4);
    expect(batch.kind === 'tokens' && batch.tokens.length).toBe(4 * 17);
  });

  test('byte tokenisation handles any UTF-8 and refuses bytes that are not UTF-8, naming the offset', () => {
    const t = { kind: 'byte' } as const;
    expect(decodeTokens(t, encodeText(t, 'héllo ✓'))).toBe('héllo ✓');
    const job = checkSubmission({ ...gptJob, dataset: { format: 'text', tokenizer: 'byte' } });
    const bad = new Uint8Array([...enc('abc'.repeat(100)), 0xff, 0xfe]);
    expect(() => prepareDataset(job, bad)).toThrow(/not valid UTF-8 near byte 300/);
  });

  test('a corpus too short for the context is refused with what it needs', () => {
    const job = checkSubmission(structuredClone(gptJob));
    expect(() => prepareDataset(job, enc('short text'))).toThrow(/needs at least \d+/);
  });

  test('labelled arrays parse from JSON and CSV (0–255 scaled), and bad rows are named', () => {
    const job = checkSubmission({ name: 'xor', model: { kind: 'mlp', hidden: [8] }, dataset: { format: 'labelled', shards: 2, heldOutFraction: 0.25 } });
    const x = Array.from({ length: 40 }, (_, i) => [i % 2, (i >> 1) % 2]);
    const y = x.map(([a, b]) => a ^ b);
    const d = prepareDataset(job, enc(JSON.stringify({ x, y })));
    expect(d).toMatchObject({ kind: 'labelled', inputs: 2, classes: 2, rows: 40 });
    if (d.kind === 'labelled') expect(d.heldOut.n + d.train[0].n + d.train[1].n).toBe(40);
    const csv = 'label,p0,p1\n' + x.map((r, i) => `${y[i]},${r[0] * 255},${r[1] * 255}`).join('\n');
    const c = prepareDataset(job, enc(csv));
    expect(c.kind === 'labelled' && Math.max(...c.train[0].x)).toBe(1);
    expect(fieldOf(() => prepareDataset(job, enc(JSON.stringify({ x, y: y.slice(1) }))))).toBe('dataset.y');
    expect(fieldOf(() => prepareDataset(job, enc(JSON.stringify({ x: [...x.slice(0, 39), [1]], y }))))).toBe('dataset.x[39]');
    expect(fieldOf(() => prepareDataset(job, enc(JSON.stringify({ x, y: y.map(() => 0) }))))).toBe('dataset.y');
  });
});
