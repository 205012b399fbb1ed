// The live dashboard in headless Chromium while simulated volunteers train a submitted job, and
// /metrics as Prometheus text with the same figures. Screenshot: artifacts/dashboard-mlp.png.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Browser } from 'playwright-core';
import { launchBrowser } from '../helpers/browser.ts';
import { startVolunteers, type Volunteers } from '../helpers/relay.ts';
import { labelledJson, mlpJob, post, startOpsRelay, submit, until, type OpsRelay } from './helpers.ts';
import { artifact, parsePrometheus, startOpsPages } from './pages.ts';

let relay: OpsRelay, pages: Awaited<ReturnType<typeof startOpsPages>>, browser: Browser, volunteers: Volunteers | undefined;
let jobId: string;

beforeAll(async () => {
  relay = await startOpsRelay();
  jobId = (await submit(relay.url, relay.alice, mlpJob({ name: 'xor classifier', hyperparameters: { updatesPerRound: 2, quorum: 1, steps: 5, batchSize: 8 } }), labelledJson(256))).body.jobId;
  await post(relay.url, `/api/ops/jobs/${jobId}/approve`, relay.operator);
  volunteers = startVolunteers(relay.url, 2, { jobId });
  pages = await startOpsPages(relay.url);
  browser = await launchBrowser({ webgpu: false });
});
afterAll(async () => {
  await volunteers?.stop();
  await browser?.close();
  await pages?.close();
  await relay?.stop();
});

describe('dashboard', () => {
  test('shows non-zero throughput, active volunteers and the job’s loss curves, live', async () => {
    await until(() => fetch(`${relay.url}/api/jobs/${jobId}`).then((r) => r.json()), (j) => j.version >= 3, 200);
    // both volunteers on the leaderboard: with K = 2 the faster one alone can make those versions
    await until(() => fetch(`${relay.url}/api/ops/snapshot`).then((r) => r.json()), (s) => s.leaderboard.length === 2, 200);
    const page = await browser.newPage({ viewport: { width: 1280, height: 1400 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${pages.url}/dashboard.html`);
    await page.waitForFunction(() => document.getElementById('conn')?.dataset.state === 'live');
    await page.waitForFunction(() => Number(document.getElementById('s-samples')?.textContent) > 0);
    expect(Number(await page.textContent('#s-active'))).toBeGreaterThanOrEqual(1);
    expect(Number(await page.textContent('#s-gflops'))).toBeGreaterThan(0);
    expect(await page.textContent('#s-ratio')).toMatch(/× smaller than fp32/);
    // the relay's disk use: its data directory, by part
    expect(await page.textContent('#h-disk')).toMatch(/^[\d.]+ [KMG]?B \(checkpoints [\d.]+ [KMG]?B, payloads [\d.]+ [KMG]?B, database [\d.]+ [KMG]?B\)$/);
    // the volunteers here are Node ones (no WebRTC): every download came from the relay
    expect(await page.textContent('#s-downloads')).toMatch(/^[\d.]+ [KM]?B \/ 0 B \(0 % by peers\)$/);
    const card = page.locator(`#job-${jobId}`);
    await expect.poll(async () => card.locator('.latest').textContent()).toMatch(/^\d+ evaluations; version \d+: held-out loss \d/);
    expect(await card.locator('.pill').textContent()).toBe('running');
    expect(await card.locator('canvas').count()).toBeGreaterThanOrEqual(2);
    await expect.poll(() => page.locator('#leaderboard tr').count()).toBe(2);
    // Live: the page keeps receiving snapshots.
    const seen = Number(await page.getAttribute('body', 'data-snapshots'));
    await page.waitForFunction((n) => Number(document.body.dataset.snapshots) > n + 1, seen);
    await page.screenshot({ path: artifact('dashboard-mlp.png'), fullPage: true });
    expect(errors).toEqual([]);
    await page.close();
  });

  test('/metrics parses as Prometheus text and carries the dashboard’s figures', async () => {
    const res = await fetch(`${relay.url}/metrics`);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    const m = parsePrometheus(await res.text());
    const one = (name: string) => m.get(name)?.[0]?.value;
    expect(one('tabtrain_samples_per_second')).toBeGreaterThan(0);
    expect(one('tabtrain_estimated_gflops')).toBeGreaterThan(0);
    expect(one('tabtrain_volunteers_active')).toBeGreaterThanOrEqual(1);
    expect(one('tabtrain_compression_ratio')).toBeGreaterThan(0);
    expect(one('tabtrain_audit_entries')).toBeGreaterThan(3);
    expect(one('tabtrain_event_loop_lag_seconds')).toBeGreaterThanOrEqual(0);
    expect(m.get('tabtrain_job_heldout_loss')?.some((s) => s.labels.job === jobId && s.value > 0)).toBe(true);
    expect(m.get('tabtrain_updates_accepted_total')?.some((s) => s.labels.job === jobId && s.value > 0)).toBe(true);
  });
});
