// A volunteer page older than its relay says so and says what to do (reload), instead of retrying for
// ever: a relay that demands a newer protocol than the built page speaks, a real page in headless Chromium.
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROTOCOL_VERSION } from '../../shared/protocol/version.ts';
import { launchBrowser } from '../helpers/browser.ts';
import { startRelay } from '../helpers/relay.ts';
import { metric, openTab, requireBuild, root, snap, tabState, waitFor } from './harness.ts';

describe('a page older than its relay', () => {
  let browser: Browser;
  beforeAll(async () => {
    requireBuild();
    browser = await launchBrowser({ webgpu: false });
  });
  afterAll(async () => { await browser?.close(); });

  it('shows the relay\'s 426 refusal with what to do (reload the page) and stops asking', async () => {
    const relay = await startRelay({ evaluate: false, staticDir: join(root, 'dist'), minProtocolVersion: PROTOCOL_VERSION + 1 });
    try {
      const tab = await openTab(browser, `${relay.url}/?cpu=1`);
      const state = await waitFor('the page to show the refusal', async () => {
        const s = await tabState(tab.page);
        return s.phase === 'error' ? s : undefined;
      }, 60_000);
      expect(state.detail).toMatch(/This page is older than its relay: reload the page/);
      const shown = await tab.page.locator('#error').innerText();
      expect(shown).toMatch(/reload the page/);
      expect(shown).toMatch(/needs version 2 or newer/);
      expect(await tab.page.locator('#error').isVisible()).toBe(true);
      await snap(tab.page, 'protocol-too-old');
      // stopped for good: no restart keeps knocking (one refused challenge from the loop, at most one more)
      const refusals = await metric(relay.url, 'tabtrain_updates_rejected_total', 'reason="TT_ERR_CLIENT_TOO_OLD"');
      expect(refusals).toBeGreaterThanOrEqual(1);
      await new Promise((r) => setTimeout(r, 1500));
      expect(await metric(relay.url, 'tabtrain_updates_rejected_total', 'reason="TT_ERR_CLIENT_TOO_OLD"')).toBe(refusals);
      await tab.context.close();
    } finally {
      await relay.stop();
    }
  });
});
