// A volunteer tab given the other relays of its network (?relays=…) goes on with the next one when the
// relay that served it stops, and says so on the page. Two real relays on loopback (each on its own
// SQLite: the tab's next task comes from the second relay, which it registers with), listed as each
// other's peers so the page may reach the other (CSP) and be answered (CORS); real Chromium.
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchBrowser } from '../helpers/browser.ts';
import { startRelay, type TestRelay } from '../helpers/relay.ts';
import { freePort, openTab, requireBuild, root, snap, tabState, waitFor } from './harness.ts';

describe('a volunteer tab with several relays', () => {
  let browser: Browser;
  beforeAll(async () => {
    requireBuild();
    browser = await launchBrowser({ webgpu: false });
  });
  afterAll(async () => { await browser?.close(); });

  it('when the relay that served the page stops, the tab trains for the next relay of ?relays= and shows that it failed over', async () => {
    const [pa, pb] = [await freePort(), await freePort()];
    const urlA = `http://127.0.0.1:${pa}`, urlB = `http://127.0.0.1:${pb}`;
    const common = { evaluate: false, staticDir: join(root, 'dist'), sweepMs: 250, defaultJob: { steps: 5 }, defence: { replication: { baseRate: 0 } } } as const;
    const relays: TestRelay[] = [];
    try {
      relays.push(await startRelay({ ...common, port: pb, peers: [urlA] }));
      relays.push(await startRelay({ ...common, port: pa, peers: [urlB] }));
      const [b, a] = relays;
      const tab = await openTab(browser, `${urlA}/?cpu=1&relays=${encodeURIComponent(urlB)}`);
      await waitFor('relay A to accept an update from the tab', async () => (await tabState(tab.page)).stats?.updatesAccepted);
      expect(a.app.store.listUpdates('mnist-mlp').length).toBeGreaterThanOrEqual(1);
      expect(b.app.store.listUpdates('mnist-mlp')).toHaveLength(0);
      await a.close();
      await waitFor('relay B to take updates from the tab', async () => b.app.store.listUpdates('mnist-mlp').length >= 1, 120_000);
      const state = await tabState(tab.page) as Awaited<ReturnType<typeof tabState>> & { relay: string; failovers: string[] };
      expect(state.relay).toBe(urlB);
      expect(state.failovers[0]).toMatch(new RegExp(`relay 127.0.0.1:${pa} stopped answering .*going on with 127.0.0.1:${pb}`));
      expect(await tab.page.locator('#relay-note').innerText()).toMatch(new RegExp(`this tab goes on with 127.0.0.1:${pb}`));
      expect(await tab.page.locator('#s-relay').innerText()).toBe(`127.0.0.1:${pb}`);
      expect(state.phase).not.toBe('error');
      // B accepted them: the tab's credit keeps growing after the failover
      const accepted = (await tabState(tab.page)).stats!.updatesAccepted;
      await waitFor('another update accepted, by relay B', async () => ((await tabState(tab.page)).stats?.updatesAccepted ?? 0) > accepted);
      await snap(tab.page, 'relay-failover');
      await tab.context.close();
    } finally {
      for (const r of relays) await r.stop().catch(() => undefined);
    }
  });
});
