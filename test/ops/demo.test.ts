// The Moby-Dick demo: its text comes from the npm package, GPT-2 BPE round-trips it exactly, and a relay
// started with demo: 'moby-dick' has the job running and leases its first task. Real relay, real HTTP.
import { afterAll, beforeAll, expect, test } from 'vitest';
import { mobyDickText } from '../../server/data/demo-text.ts';
import { demoJobs } from '../../shared/jobs/demos.ts';
import { checkSubmission } from '../../shared/jobs/spec.ts';
import { decodeTokens, encodeText } from '../../shared/jobs/text.ts';
import { decodeTokenShard } from '../../shared/data/token-shard.ts';
import { registerSigned } from '../helpers/identity.ts';
import { startRelay, type TestRelay } from '../helpers/relay.ts';

const text = mobyDickText();

test('the demo text is the whole book, and BPE round-trips it', () => {
  expect(text.length).toBeGreaterThan(1_200_000);
  expect(text).toContain('CHAPTER 1. Loomings.\n\nCall me Ishmael.');
  expect(text.trimEnd()).toMatch(/only found another orphan\.$/);
  const ids = encodeText({ kind: 'bpe' }, text);
  // GPT-2 BPE packs English into about a quarter of its characters
  expect(ids.length).toBeGreaterThan(200_000);
  expect(ids.length).toBeLessThan(text.length / 2);
  expect(decodeTokens({ kind: 'bpe' }, ids)).toBe(text);
});

test('every demo is a valid job.json', () => {
  for (const job of Object.values(demoJobs)) expect(checkSubmission(job)).toBe(job);
});

let relay: TestRelay;
beforeAll(async () => { relay = await startRelay({ defaultJob: false, demo: 'moby-dick' }); });
afterAll(async () => { await relay?.stop(); });

test('a relay started with the demo runs it and leases its first task', async () => {
  const { jobs } = await (await fetch(`${relay.url}/api/jobs`)).json() as { jobs: { jobId: string; status: string }[] };
  expect(jobs).toEqual([expect.objectContaining({ jobId: 'moby-dick', status: 'running' })]);
  const info = await (await fetch(`${relay.url}/api/jobs/moby-dick`)).json() as { model: { vocab: number }; dataset: { shards: number } };
  expect(info.model).toMatchObject({ ...demoJobs['moby-dick'].model, vocab: 50_257 });
  expect(info.dataset.shards).toBe(demoJobs['moby-dick'].dataset.shards);

  const v = await registerSigned(relay.url);
  const res = await v.askForTask('moby-dick');
  const task = await res.json() as unknown;
  expect(res.status, JSON.stringify(task)).toBe(200);
  expect(task).toMatchObject({ jobId: 'moby-dick', baseVersion: 0, model: { vocab: 50_257 } });
  // its shard is BPE ids of the book: an eighth of the training text, from its beginning
  const shard = decodeTokenShard(new Uint8Array(await (await fetch(`${relay.url}/api/jobs/moby-dick/shards/0`)).arrayBuffer()));
  expect(shard.vocab).toBe(50_257);
  expect(shard.tokens.length).toBeGreaterThan(20_000);
  expect(decodeTokens({ kind: 'bpe' }, shard.tokens.subarray(0, 50))).toBe(decodeTokens({ kind: 'bpe' }, encodeText({ kind: 'bpe' }, text).subarray(0, 50)));
});
