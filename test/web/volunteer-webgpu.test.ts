// The volunteer page end to end on WebGPU: real relay, real built page, headless Chromium with
// SwiftShader running the engine's WGSL in each tab's worker, until the job learns MNIST.
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchBrowser } from '../helpers/browser.ts';
import type { TestRelay } from '../helpers/relay.ts';
import { bestAccuracy, openTab, requireBuild, snap, startWebRelay, tabState, waitFor, type Tab, type TabState } from './harness.ts';

/** The default job with the fastest settings found for three volunteers (fewest inner steps to 90 %:
 * on SwiftShader a step costs about the same at batch 32 or 128, so fewer, bigger steps). */
const FAST = {
  steps: 10, batchSize: 128, updatesPerRound: 3, quorum: 2,
  adamw: { lr: 8e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 },
};

describe('volunteer tabs on WebGPU', () => {
  let browser: Browser;
  beforeAll(async () => {
    requireBuild();
    browser = await launchBrowser();
  });
  afterAll(async () => { await browser?.close(); });

  it('says what the tab does and for whom, asks consent once, and remembers it', async () => {
    const relay = await startWebRelay();
    try {
      // ?cpu=1 keeps this check cheap: it is about the page, not the GPU
      const tab = await openTab(browser, `${relay.url}/?cpu=1`, { consent: false });
      const { page } = tab;
      await page.locator('#consent').waitFor({ state: 'visible' });
      expect(await page.locator('#job-name').textContent()).toBe('MNIST digits MLP');
      expect(await page.locator('#job-researcher').textContent()).toBe('tabtrain');
      expect(await page.locator('#job-data').textContent()).toContain('mnist');
      expect(await page.locator('#live').isVisible()).toBe(false);
      await snap(page, 'consent');
      await page.locator('#consent-yes').click();
      await page.locator('#live').waitFor({ state: 'visible' });
      // a reload goes straight to work: consent is remembered
      await page.reload();
      await page.locator('#live').waitFor({ state: 'visible' });
      expect(await page.locator('#consent').isVisible()).toBe(false);
      expect((await tabState(page)).consent).toBe(true);
      await tab.context.close();
    } finally {
      await relay.stop();
    }
  });

  it('three tabs train the default job to at least 90 % held-out accuracy, really on WebGPU', async () => {
    const relay: TestRelay = await startWebRelay(FAST);
    const tabs: Tab[] = [];
    try {
      for (let i = 0; i < 3; i++) tabs.push(await openTab(browser, relay.url));
      const seen = new Set<string>();
      let pausedOnce = false;
      const last: TabState[] = [];
      await waitFor('90 % held-out accuracy', async () => {
        for (const [i, tab] of tabs.entries()) {
          const s = await tabState(tab.page);
          last[i] = s;
          // one screenshot of each state as it first appears
          if (!seen.has(s.phase)) { seen.add(s.phase); await snap(tab.page, s.phase); }
          // pause and resume one tab once, from the page's own button, mid-training
          if (!pausedOnce && i === 0 && s.phase === 'training' && (s.stats?.steps ?? 0) > 0) {
            pausedOnce = true;
            await tab.page.locator('#toggle').click();
            await waitFor('the paused state', async () => (await tabState(tab.page)).phase === 'paused', 30_000, 100);
            expect(await tab.page.locator('#toggle').textContent()).toBe('Resume');
            await snap(tab.page, 'paused');
            seen.add('paused');
            await tab.page.locator('#toggle').click();
            await waitFor('resuming', async () => (await tabState(tab.page)).phase !== 'paused', 30_000, 100);
          }
        }
        return (await bestAccuracy(relay.url)) >= 0.9;
      }, 380_000, 200);
      expect(await bestAccuracy(relay.url)).toBeGreaterThanOrEqual(0.9);
      for (const s of last) {
        // the tabs really ran WebGPU: a SwiftShader adapter, and GPU steps counted by the engine
        expect(s.device?.backend).toBe('webgpu');
        expect(s.device?.description).toMatch(/swiftshader/i);
        expect(s.stats!.gpuSteps).toBeGreaterThan(0);
        expect(s.stats!.gpuSteps).toBe(s.stats!.steps);
      }
      const accepted = last.map((s) => s.stats!.updatesAccepted);
      expect(accepted.filter((n) => n > 0).length).toBeGreaterThanOrEqual(2);
      const sent = last.reduce((a, s) => a + s.stats!.bytesSent, 0), dense = last.reduce((a, s) => a + s.stats!.denseBytes, 0);
      expect(dense / sent).toBeGreaterThan(3.5);
      expect(pausedOnce).toBe(true);
      await snap(tabs[0].page, 'trained');
      for (const t of tabs) expect(t.logs.filter((l) => l.startsWith('pageerror'))).toEqual([]);
    } finally {
      for (const t of tabs) await t.context.close();
      await relay.stop();
    }
  }, 420_000);
});
