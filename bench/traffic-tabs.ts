// The peer-to-peer part of bench:traffic: real volunteer tabs in headless Chromium (the built page, CPU
// path, real WebRTC data channels on loopback, no ICE servers) train the default MNIST job on a live
// relay until they have `updates` accepted updates between them; the relay's own /metrics give its
// egress by kind and the peer-carried bytes the tabs reported. Run once with sharing off, once on.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Browser } from 'playwright-core';
import { buildApp } from '../server/app.ts';

export type TabsTraffic = {
  tabs: number; share: boolean; accepted: number; seconds: number;
  /** relay egress: params and deltas, shards, everything else */
  model: number; shard: number; other: number;
  /** bytes tabs reported taking from each other */
  peers: number;
  /** over all tabs: asks of a peer that brought nothing (busy, gone, slow), bytes rejected by hash */
  missed: number; rejected: number;
};

const root = resolve(import.meta.dirname, '..');

async function metrics(url: string): Promise<Map<string, number>> {
  const m = new Map<string, number>();
  for (const line of (await (await fetch(`${url}/metrics`)).text()).split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    m.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return m;
}

export async function tabsTraffic(browser: Browser, tabs: number, share: boolean, updates: number): Promise<TabsTraffic> {
  const dataDir = mkdtempSync(join(tmpdir(), 'tabtrain-traffic-tabs-'));
  const relay = await buildApp({
    dataDir, port: 0, host: '127.0.0.1', logger: false, staticDir: join(root, 'dist'),
    defence: { powDifficulty: 8, replication: { baseRate: 0 } },
  });
  const url = relay.url!.replace('0.0.0.0', '127.0.0.1');
  const contexts = [];
  const pages = [];
  const t0 = Date.now();
  try {
    for (let i = 0; i < tabs; i++) {
      const context = await browser.newContext();
      contexts.push(context);
      await context.addInitScript((s) => {
        localStorage.setItem('tabtrain.consent.v1', 'yes');
        localStorage.setItem('tabtrain.settings.v1', JSON.stringify({ share: s }));
      }, share);
      const page = await context.newPage();
      pages.push(page);
      // a loaded machine can take a while to serve and start ten tabs
      await page.goto(`${url}/?cpu=1`, { timeout: 180_000 });
    }
    const accepted = () => relay.app.db.prepare("SELECT count(*) AS n FROM tasks WHERE state = 'accepted'").get() as { n: number };
    while (accepted().n < updates) await new Promise((r) => setTimeout(r, 500));
    // stop every tab, then give their last byte reports (every 2 s) time to land
    for (const p of pages) await p.locator('#toggle').click();
    await new Promise((r) => setTimeout(r, 5000));
    const m = await metrics(url);
    const tabStats = await Promise.all(pages.map((p) => p.evaluate(() => (globalThis as unknown as { tabtrain: { peers?: { missed: number; rejected: number } } }).tabtrain.peers)));
    const egress = (kind: string) => m.get(`tabtrain_relay_egress_bytes_total{kind="${kind}"}`) ?? 0;
    return {
      tabs, share, accepted: accepted().n, seconds: (Date.now() - t0) / 1000,
      model: egress('model'), shard: egress('shard'), other: egress('other'),
      peers: m.get('tabtrain_peer_bytes_total{direction="received"}') ?? 0,
      missed: tabStats.reduce((a, t) => a + (t?.missed ?? 0), 0), rejected: tabStats.reduce((a, t) => a + (t?.rejected ?? 0), 0),
    };
  } finally {
    for (const c of contexts) await c.close();
    await relay.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}
