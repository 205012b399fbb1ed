// A done job on the pages, in headless Chromium against a real relay: the job page marks the released
// version (not the last) with why the job stopped and offers it as safetensors; the dashboard lists the job
// apart, under "Done jobs"; the volunteer page says no job runs. Screenshot: artifacts/job-done.png.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Browser } from 'playwright-core';
import { createToken } from '../../server/ops/tokens.ts';
import type { Task } from '../../shared/protocol/messages.ts';
import { rng } from '../../shared/util/rng.ts';
import { launchBrowser } from '../helpers/browser.ts';
import { startRelay, type TestRelay } from '../helpers/relay.ts';
import { leaseFor, post, registerVolunteer, until, uploadFor } from '../ops/helpers.ts';
import { artifact, startOpsPages } from '../ops/pages.ts';

let relay: TestRelay, pages: Awaited<ReturnType<typeof startOpsPages>>, browser: Browser;

beforeAll(async () => {
  relay = await startRelay({ defaultJob: { updatesPerRound: 1, quorum: 1 }, defence: { replication: { baseRate: 0 } } });
  // one noisy update (norm about 10, under the relay's norm bound) makes version 1 worse than version 0, then an
  // operator ends the job: version 0 is released
  const v = await registerVolunteer(relay.url);
  const task = (await leaseFor('mnist-mlp', v)).body as Task;
  const r = rng(5);
  expect((await uploadFor(relay.url, task, v, Float32Array.from({ length: task.paramCount }, () => 0.03 * r.normal()))).status).toBe(200);
  await until(async () => relay.app.store.listEvals('mnist-mlp').length, (n) => n === 2);
  const operator = createToken(relay.app.db, { role: 'operator', name: 'olga', actor: 'test:data-dir' }).token;
  expect((await post(relay.url, '/api/ops/jobs/mnist-mlp/finish', operator, { reason: 'a test ends it' })).status).toBe(200);
  pages = await startOpsPages(relay.url);
  browser = await launchBrowser({ webgpu: false });
});
afterAll(async () => {
  await browser?.close();
  await pages?.close();
  await relay?.stop();
});

describe('a done job on the pages', () => {
  test('the job page marks the released version and why the job stopped, with a safetensors download', async () => {
    const page = await browser.newPage({ viewport: { width: 1100, height: 1400 } });
    await page.goto(`${pages.url}/job.html?id=mnist-mlp`);
    // the page's first refresh on a loaded machine may take a while: wait for it, not a fixed second
    await page.waitForFunction(() => document.getElementById('job-status')?.textContent === 'done', undefined, { timeout: 120_000 });
    expect(await page.getAttribute('#job-finish', 'data-released')).toBe('0');
    expect(await page.textContent('#job-finish')).toMatch(/^released version 0 \(held-out loss \d\.\d\d+, accuracy .*\); stopped: a test ends it$/);
    expect(await page.isVisible('#job-finish')).toBe(true);
    expect(await page.textContent('#job-until')).toMatch(/ends at the first of: version 1000; no held-out loss improvement over 0\.002 for 20 evaluations; digits shifted up to 2 px/);
    // the released version's row comes first and is marked, though version 1 is newer
    expect(await page.textContent('#checkpoints tr.released td:first-child')).toBe('0 released');
    const href = await page.getAttribute('#checkpoints tr.released a.safetensors', 'href');
    expect(href).toBe('/api/ops/jobs/mnist-mlp/versions/0/model.safetensors');
    const res = await fetch(relay.url + href!);
    expect(res.status).toBe(200);
    expect((await res.arrayBuffer()).byteLength).toBeGreaterThan(8 + 101_770 * 4);
    expect(await page.textContent('#try-version')).toBe('(version 0, released)');
    await page.screenshot({ path: artifact('job-done.png'), fullPage: true });
    await page.close();
  });

  test('the dashboard lists the job under done jobs, and the volunteer page says none runs', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 1400 } });
    await page.goto(`${pages.url}/dashboard.html`);
    await page.waitForSelector('#jobs-done #job-mnist-mlp', { timeout: 120_000 });
    expect(await page.locator('#jobs #job-mnist-mlp').count()).toBe(0);
    expect(await page.textContent('#jobs-done #job-mnist-mlp .latest')).toMatch(/Released version 0 .*; stopped: a test ends it$/);
    await page.goto(`${pages.url}/`);
    await page.waitForFunction(() => document.getElementById('job-name')?.textContent === 'No job is running right now', undefined, { timeout: 120_000 });
    expect(await page.textContent('#job-description')).toMatch(/waits, using nothing meanwhile/);
    await page.close();
  });
});
