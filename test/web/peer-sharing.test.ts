// Tabs share what they downloaded over real WebRTC data channels (headless Chromium, loopback, no ICE
// servers): a second tab takes a version or shard from the first, checked against the relay's hash; a
// peer that sends corrupted bytes is caught by hash and dropped, and the tab trains from the relay; a
// tab with sharing off takes nothing from peers. Tabs run the CPU path (?cpu=1) to keep this short.
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchBrowser } from '../helpers/browser.ts';
import type { TestRelay } from '../helpers/relay.ts';
import { metric, openTab, requireBuild, startWebRelay, tabState, waitFor, type Tab } from './harness.ts';

type Peers = { received: number; sent: number; rejected: number; droppedPeers: number; held: number };
const peersOf = async (t: Tab): Promise<Peers | undefined> => (await tabState(t.page) as { peers?: Peers }).peers;
const accepted = async (t: Tab): Promise<number> => (await tabState(t.page)).stats?.updatesAccepted ?? 0;

/** Breaks every binary message this page sends on a data channel (the piece bytes it serves): a peer that lies. */
const corruptOutgoing = () => {
  const send = RTCDataChannel.prototype.send as (this: RTCDataChannel, data: unknown) => void;
  RTCDataChannel.prototype.send = function (this: RTCDataChannel, data: unknown) {
    if (data instanceof ArrayBuffer && data.byteLength > 0) {
      const b = new Uint8Array(data.slice(0));
      b[b.length >> 1] ^= 0xff;
      return send.call(this, b.buffer);
    }
    return send.call(this, data);
  } as RTCDataChannel['send'];
};

describe('tabs share pieces peer to peer', () => {
  let browser: Browser;
  beforeAll(async () => {
    requireBuild();
    browser = await launchBrowser({ webgpu: false });
  });
  afterAll(async () => { await browser?.close(); });

  const withTabs = async (body: (relay: TestRelay, tabs: Tab[]) => Promise<void>) => {
    const relay = await startWebRelay({ leaseMs: 60_000, steps: 5 });
    const tabs: Tab[] = [];
    try {
      await body(relay, tabs);
    } finally {
      for (const t of tabs) await t.context.close();
      await relay.stop();
    }
  };

  it('a second tab gets pieces from the first over WebRTC, checked, and trains on them', () => withTabs(async (relay, tabs) => {
    const a = await openTab(browser, `${relay.url}/?cpu=1`);
    tabs.push(a);
    await waitFor('tab A to have an update accepted (it holds params and a shard)', async () => (await peersOf(a))?.held && accepted(a));
    const b = await openTab(browser, `${relay.url}/?cpu=1`);
    tabs.push(b);
    const got = await waitFor('tab B to receive bytes from a peer', async () => {
      const p = await peersOf(b);
      return p && p.received > 0 ? p : undefined;
    });
    expect(got.rejected).toBe(0);
    await waitFor('tab B to have an update accepted', async () => (await accepted(b)) >= 1);
    const aPeers = await waitFor('tab A to count what it served', async () => {
      const p = await peersOf(a);
      return p && p.sent > 0 ? p : undefined;
    });
    expect(aPeers.sent).toBeGreaterThan(0);
    // the tabs' reports reach the relay's /metrics beside its own egress
    await waitFor('the relay to count peer-carried bytes', async () => (await metric(relay.url, 'tabtrain_peer_bytes_total', 'direction="received"')) > 0);
    expect(await metric(relay.url, 'tabtrain_relay_egress_bytes_total', 'kind="model"')).toBeGreaterThan(0);
    expect((await tabState(b.page)).phase).not.toBe('error');
  }));

  it('a peer serving corrupted bytes is caught by hash and dropped; the tab trains from the relay', () => withTabs(async (relay, tabs) => {
    const liarContext = await browser.newContext();
    await liarContext.addInitScript(corruptOutgoing);
    const liar = await openTab(browser, `${relay.url}/?cpu=1`, { context: liarContext });
    tabs.push(liar);
    await waitFor('the lying tab to hold pieces', async () => (await peersOf(liar))?.held && accepted(liar));
    const b = await openTab(browser, `${relay.url}/?cpu=1`);
    tabs.push(b);
    const caught = await waitFor('tab B to reject bytes from the lying peer', async () => {
      const p = await peersOf(b);
      return p && p.rejected > 0 ? p : undefined;
    });
    expect(caught.droppedPeers).toBe(1);
    expect(caught.received).toBe(0);
    await waitFor('tab B to have an update accepted anyway', async () => (await accepted(b)) >= 1);
    const after = (await peersOf(b))!;
    // dropped: never asked again, so nothing more is rejected and nothing is taken from it
    expect(after.received).toBe(0);
    expect(after.droppedPeers).toBe(1);
  }));

  it('a paused tab serves nothing: the other tab trains from the relay', () => withTabs(async (relay, tabs) => {
    const a = await openTab(browser, `${relay.url}/?cpu=1`);
    tabs.push(a);
    await waitFor('tab A to hold pieces', async () => (await peersOf(a))?.held && accepted(a));
    await a.page.locator('#toggle').click();
    await waitFor('tab A to stop serving', async () => (await tabState(a.page) as { peers?: { serving: boolean } }).peers?.serving === false);
    const b = await openTab(browser, `${relay.url}/?cpu=1`);
    tabs.push(b);
    await waitFor('tab B to have an update accepted', async () => (await accepted(b)) >= 1);
    expect((await peersOf(b))!.received).toBe(0);
    expect((await peersOf(a))!.sent).toBe(0);
  }));

  it('a tab with sharing off takes nothing from peers and trains from the relay', () => withTabs(async (relay, tabs) => {
    const a = await openTab(browser, `${relay.url}/?cpu=1`);
    tabs.push(a);
    await waitFor('tab A to hold pieces', async () => (await peersOf(a))?.held && accepted(a));
    const offContext = await browser.newContext();
    await offContext.addInitScript(() => localStorage.setItem('tabtrain.settings.v1', JSON.stringify({ share: false })));
    const b = await openTab(browser, `${relay.url}/?cpu=1`, { context: offContext });
    tabs.push(b);
    await waitFor('tab B to have an update accepted', async () => (await accepted(b)) >= 1);
    expect(await peersOf(b)).toBeUndefined();
    expect((await tabState(b.page)).stats!.bytesReceived).toBeGreaterThan(0);
    expect((await peersOf(a))!.sent).toBe(0);
    expect(await metric(relay.url, 'tabtrain_peers_connected')).toBe(1);
  }));
});
