// Jobs sized by what a volunteer's adapter holds (the engine's memory plan), not by a parameter count,
// and the GPT-2 BPE tokenizer: a GPT-2-small job is accepted, shapes no adapter holds and vocabularies
// that do not match the tokenizer are refused naming the field.
import { describe, expect, test } from 'vitest';
import { checkSubmission, SpecError } from '../../shared/jobs/spec.ts';
import { prepareDataset, resolveModel } from '../../shared/jobs/dataset.ts';
import { bpeVocab, decodeTokens, encodeText, vocabSize } from '../../shared/jobs/text.ts';
import { paramCount } from '../../shared/models/config.ts';

const gpt2small = {
  name: 'gpt2-small', model: { kind: 'gpt', context: 1024, layers: 12, heads: 12, width: 768 },
  hyperparameters: { batchSize: 1 }, dataset: { format: 'text', tokenizer: 'bpe' },
};
const refusal = (f: () => unknown) => {
  try { f(); } catch (e) { if (e instanceof SpecError) return { field: e.field, message: e.message }; throw e; }
  return { field: 'no error', message: '' };
};
const enc = (s: string) => new TextEncoder().encode(s);

describe('model size by the memory plan', () => {
  test('a GPT-2-small job (BPE, context 1024, 12 layers, 12 heads, width 768) is accepted', () => {
    const job = checkSubmission(structuredClone(gpt2small));
    expect(job.dataset).toMatchObject({ tokenizer: 'bpe' });
    const withVocab = checkSubmission({ ...gpt2small, model: { ...gpt2small.model, vocab: 50_257 } });
    expect(withVocab.model).toMatchObject({ vocab: 50_257 });
    // Over the old fixed limit of 20 M parameters (the head is untied: 163 M).
    expect(paramCount({ kind: 'gpt', vocab: bpeVocab, context: 1024, layers: 12, heads: 12, width: 768 })).toBeGreaterThan(120e6);
  });

  test('a batch size the typical adapter cannot hold names hyperparameters.batchSize, the budget and what fits', () => {
    const r = refusal(() => checkSubmission({ ...gpt2small, hyperparameters: { batchSize: 8 } }));
    expect(r.field).toBe('hyperparameters.batchSize');
    expect(r.message).toMatch(/assumes 4 GiB in all and 1 GiB per buffer/);
    expect(r.message).toMatch(/training needs \d+ bytes.*\(\d fits\)/);
  });

  test('a shape no adapter holds at batch 1 names model and the buffer or total', () => {
    const r = refusal(() => checkSubmission({ ...gpt2small, model: { kind: 'gpt', context: 1024, layers: 48, heads: 32, width: 4096 } }));
    expect(r.field).toBe('model');
    // every module fits one 1 GiB binding (θ is split between them), but not 4 GiB in all
    expect(r.message).toMatch(/even at batch size 1: training needs \d+ bytes .*the adapter budget is 4294967296 bytes/);
  });

  test('a head size over what the attention kernels hold names model.heads', () => {
    const r = refusal(() => checkSubmission({ ...gpt2small, model: { kind: 'gpt', context: 64, layers: 1, heads: 2, width: 1024 } }));
    expect(r).toMatchObject({ field: 'model.heads', message: expect.stringMatching(/head size of width\/heads = 512, over the 256.*at least 4 heads/) });
  });

  test('a vocabulary that does not match the tokenizer names model.vocab', () => {
    expect(refusal(() => checkSubmission({ ...gpt2small, model: { ...gpt2small.model, vocab: 50_000 } })))
      .toMatchObject({ field: 'model.vocab', message: expect.stringMatching(/"bpe" tokenizer has 50257 tokens/) });
    expect(refusal(() => checkSubmission({ ...gpt2small, model: { ...gpt2small.model, vocab: 300 }, dataset: { format: 'text', tokenizer: 'byte' } })).field).toBe('model.vocab');
    const charJob = checkSubmission({ ...gpt2small, model: { kind: 'gpt', context: 8, layers: 1, heads: 2, width: 16, vocab: 99 }, dataset: { format: 'text', tokenizer: 'char', shards: 2 } });
    const data = prepareDataset(charJob, enc('abcdefgh '.repeat(60)));
    expect(refusal(() => resolveModel(charJob, data))).toMatchObject({ field: 'model.vocab', message: expect.stringMatching(/corpus has 9 tokens/) });
  });

  test('the data decides a char model\'s vocabulary, and the fit is checked then (an MLP too)', () => {
    const wide = checkSubmission({ name: 'wide', model: { kind: 'mlp', hidden: [8192, 8192, 8192, 8192, 8192] }, dataset: { format: 'labelled' } });
    const x = Array.from({ length: 40 }, (_, i) => Array.from({ length: 4000 }, (_, j) => ((i + j) % 7) / 7));
    const data = prepareDataset(wide, enc(JSON.stringify({ x, y: x.map((_, i) => i % 2) })));
    // 8192² × 4 layers ≈ 302 M parameters: 16 bytes each are over the 4 GiB assumed in all.
    expect(refusal(() => resolveModel(wide, data))).toMatchObject({ field: 'model', message: expect.stringMatching(/training needs \d+ bytes \(\d+\.\d MiB: params/) });
  });
});

describe('bpe tokenizer (GPT-2, shipped in the npm package)', () => {
  test('round-trips text, including non-ASCII and the literal text <|endoftext|>', () => {
    const t = { kind: 'bpe' } as const;
    const text = 'Hello, world: héllo ✓ 日本語 <|endoftext|> done.\n';
    const ids = encodeText(t, text);
    expect(ids.length).toBeLessThan(text.length);
    expect(Math.max(...ids)).toBeLessThan(bpeVocab);
    expect(Array.from(encodeText(t, 'Hello world'))).toEqual([15496, 995]); // GPT-2's ids
    expect(decodeTokens(t, ids)).toBe(text);
    expect(vocabSize(t)).toBe(50_257);
    expect(decodeTokens(t, [15496, 99_999])).toBe('Hello\uFFFD');
  });

  test('tokenises a corpus for a GPT job with vocab 50,257', () => {
    const job = checkSubmission({ ...gpt2small, model: { kind: 'gpt', context: 16, layers: 1, heads: 2, width: 16 }, dataset: { format: 'text', tokenizer: 'bpe', shards: 2 } });
    const text = 'The quick brown fox jumps over the lazy dog. '.repeat(40);
    const d = prepareDataset(job, enc(text));
    if (d.kind !== 'text') throw new Error('expected text');
    expect(d.vocab).toBe(bpeVocab);
    expect(decodeTokens(d.tokenizer, d.train[0].tokens).startsWith('The quick brown fox')).toBe(true);
    expect(resolveModel(job, d)).toMatchObject({ kind: 'gpt', vocab: bpeVocab, context: 16 });
  });
});
