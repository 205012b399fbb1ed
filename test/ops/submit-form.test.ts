// The submit form's live estimates against the relay's own figures, in headless Chromium on a real relay:
// for the Moby-Dick example the page's parameters, GPU memory and bytes per task equal the relay's
// POST /api/ops/jobs/estimate for the JSON the form wrote; a batch size no volunteer could hold is refused
// on the page, before any upload, with the relay's own message; and a char-level job's parameter count,
// sized from the dropped corpus, equals the one the relay reports when the job is submitted.
import { afterAll, beforeAll, expect, test } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { launchBrowser } from '../helpers/browser.ts';
import { tempDataDir } from '../helpers/relay.ts';
import { startOpsRelay, type OpsRelay } from './helpers.ts';
import { startOpsPages } from './pages.ts';

let relay: OpsRelay, pages: Awaited<ReturnType<typeof startOpsPages>>, browser: Browser;
beforeAll(async () => {
  relay = await startOpsRelay();
  pages = await startOpsPages(relay.url);
  browser = await launchBrowser({ webgpu: false });
});
afterAll(async () => {
  await browser?.close();
  await pages?.close();
  await relay?.stop();
});

const shown = async (page: Page) => {
  const v = (id: string) => page.getAttribute(`#${id}`, 'data-value').then((s) => (s === null ? undefined : Number(s)));
  return { paramCount: await v('est-params'), gpuBytes: await v('est-gpu'), downBytes: await v('est-down'), upBytes: await v('est-up') };
};
const relayEstimate = async (spec: unknown, data?: object) => {
  const r = await fetch(`${relay.url}/api/ops/jobs/estimate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ spec, data }) });
  expect(r.status).toBe(200);
  return await r.json() as { paramCount: number; gpuBytes: number; downBytes: number; upBytes: number; problem?: { field: string; message: string } };
};

test('the estimates of the Moby-Dick example equal the relay\'s, and a batch no volunteer holds is refused before upload', async () => {
  const page = await browser.newPage();
  await page.goto(`${pages.url}/submit.html`);
  await page.click('[data-example="moby-dick"]');
  await expect.poll(() => page.getAttribute('#est-params', 'data-value')).not.toBeNull();
  expect(await page.inputValue('#f-tokenizer')).toBe('bpe');
  const spec = JSON.parse(await page.inputValue('#spec'));
  const fromRelay = await relayEstimate(spec);
  expect(fromRelay.problem).toBeUndefined();
  expect(await shown(page)).toEqual({ paramCount: fromRelay.paramCount, gpuBytes: fromRelay.gpuBytes, downBytes: fromRelay.downBytes, upBytes: fromRelay.upBytes });
  expect(fromRelay.paramCount).toBe(13_270_784);

  // GPT-2 small's shape from the fields, at a batch size of 64: over a typical adapter
  for (const [id, v] of [['f-context', '1024'], ['f-layers', '6'], ['f-heads', '12'], ['f-width', '768'], ['f-batch', '64']]) await page.fill(`#${id}`, v);
  const big = JSON.parse(await page.inputValue('#spec'));
  expect(big.model).toEqual({ kind: 'gpt', context: 1024, layers: 6, heads: 12, width: 768 });
  expect(big.hyperparameters.batchSize).toBe(64);
  const refused = await relayEstimate(big);
  expect(refused.problem?.field).toBe('hyperparameters.batchSize');
  await expect.poll(() => page.textContent('#estimate-note')).toBe(`The relay would refuse this: ${refused.problem!.message}`);
  expect((await shown(page)).gpuBytes).toBe(refused.gpuBytes);
  // nothing is uploaded: the form refuses first, with the relay's words
  const file = join(tempDataDir(), 'moby.txt');
  writeFileSync(file, 'Call me Ishmael. '.repeat(2000));
  await page.setInputFiles('#data', file);
  await page.fill('#token', relay.alice);
  let posted = 0;
  page.on('request', (r) => { if (r.method() === 'POST' && r.url().endsWith('/api/ops/jobs')) posted++; });
  await page.click('#submit');
  await expect.poll(() => page.textContent('#form-error')).toBe(refused.problem!.message);
  expect(posted).toBe(0);
  await page.close();
});

test('a char-level job sized from the dropped corpus has the parameter count the relay gives it', async () => {
  const page = await browser.newPage();
  await page.goto(`${pages.url}/submit.html`);
  await page.fill('#token', relay.alice);
  await page.click('[data-example="gpt"]');
  const corpus = 'it was the best of times, it was the worst of times. '.repeat(60);
  const file = join(tempDataDir(), 'corpus.txt');
  writeFileSync(file, corpus);
  await page.setInputFiles('#data', file);
  await expect.poll(() => page.textContent('#preview')).toContain('it was the best of times');
  await expect.poll(() => page.getAttribute('#est-params', 'data-value')).not.toBeNull();
  const estimate = await shown(page);
  await page.click('#submit');
  await page.waitForSelector('#job-link');
  const jobId = await page.getAttribute('#result', 'data-job-id');
  const job = await (await fetch(`${relay.url}/api/jobs/${jobId}`, { headers: { authorization: `Bearer ${relay.alice}` } })).json() as { paramCount: number; model: { vocab: number } };
  expect(job.model.vocab).toBe(new Set(corpus).size);
  expect(estimate.paramCount).toBe(job.paramCount);
  expect(estimate).toEqual(await relayEstimate(JSON.parse(await page.inputValue('#spec')), { vocab: job.model.vocab }).then((e) => ({ paramCount: e.paramCount, gpuBytes: e.gpuBytes, downBytes: e.downBytes, upBytes: e.upBytes })));
  await page.close();
});
