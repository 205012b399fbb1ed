// Model size and tokenizer refusals from the relay's front door: a real relay on loopback, real SQLite,
// real HTTP. A bpe job is accepted with GPT-2's vocabulary; shapes no typical adapter holds and a
// vocabulary that does not match the tokenizer get 400 TT_ERR_JOB_SPEC naming the field.
import { afterAll, beforeAll, expect, test } from 'vitest';
import { startOpsRelay, submit, type OpsRelay } from './helpers.ts';

const corpus = 'The quick brown fox jumps over the lazy dog, again and again. '.repeat(60);
const bpeJob = {
  name: 'fox bpe', model: { kind: 'gpt', context: 16, layers: 1, heads: 2, width: 16 },
  dataset: { format: 'text', tokenizer: 'bpe', shards: 2 }, hyperparameters: { steps: 2, batchSize: 2 },
};
const gpt2small = { kind: 'gpt', context: 1024, layers: 12, heads: 12, width: 768 };

let relay: OpsRelay;
beforeAll(async () => { relay = await startOpsRelay(); });
afterAll(async () => { await relay?.stop(); });

test('a bpe GPT job is accepted with the 50,257-token vocabulary', async () => {
  const r = await submit(relay.url, relay.alice, bpeJob, corpus);
  expect(r.status, JSON.stringify(r.body)).toBe(201);
  expect(r.body.model).toMatchObject({ kind: 'gpt', vocab: 50_257, context: 16 });
});

test('too big for a typical adapter, or a vocabulary the tokenizer does not have: 400 naming the field', async () => {
  const cases: [unknown, RegExp][] = [
    [{ ...bpeJob, model: gpt2small, hyperparameters: { batchSize: 8 } }, /^hyperparameters\.batchSize: 8 does not fit a typical volunteer's GPU \(the relay assumes 4 GiB in all and 1 GiB per buffer\): training needs \d+ bytes/],
    [{ ...bpeJob, model: { ...gpt2small, layers: 48, width: 4096, heads: 32 }, hyperparameters: { batchSize: 1 } }, /^model: does not fit .* even at batch size 1: training needs \d+ bytes/],
    [{ ...bpeJob, model: { ...bpeJob.model, vocab: 256 } }, /^model\.vocab: is 256, but the "bpe" tokenizer has 50257 tokens/],
  ];
  for (const [spec, message] of cases) {
    const r = await submit(relay.url, relay.alice, spec, corpus);
    expect(r.status, JSON.stringify(r.body)).toBe(400);
    expect(r.body.error.code).toBe('TT_ERR_JOB_SPEC');
    expect(r.body.error.message).toMatch(message);
  }
});
