// The relay's side of peer-to-peer sharing, over real HTTP and WebSockets on loopback: PeerJS signalling
// (what the peerjs client speaks), the tracker of who holds which piece, tabs' byte reports in /metrics,
// shard hashes, relay egress, and clear 4xx answers for bad announcements. The WebRTC side is tested
// with real Chromium tabs in test/web/peer-sharing.test.ts.
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { startRelay, type TestRelay } from '../helpers/relay.ts';
import { metric } from '../web/harness.ts';

type Msg = { type: string; src?: string; dst?: string; payload?: unknown };

/** A PeerJS signalling client as the peerjs library opens one; collects what the relay sends it. */
async function signal(relay: TestRelay, id: string, opts: { key?: string; token?: string } = {}): Promise<{ ws: WebSocket; got: Msg[]; next(type: string): Promise<Msg> }> {
  const url = `${relay.url.replace('http', 'ws')}/p2p/peerjs?key=${opts.key ?? 'tabtrain'}&id=${id}&token=${opts.token ?? 'tok'}&version=1.5.5`;
  const ws = new WebSocket(url);
  const got: Msg[] = [];
  const waiters: (() => void)[] = [];
  ws.on('message', (d) => { got.push(JSON.parse(String(d)) as Msg); for (const w of waiters.splice(0)) w(); });
  const next = async (type: string): Promise<Msg> => {
    for (;;) {
      const i = got.findIndex((m) => m.type === type);
      if (i >= 0) return got.splice(i, 1)[0];
      await new Promise<void>((r) => waiters.push(r));
    }
  };
  return { ws, got, next };
}

const hashA = 'a'.repeat(64), hashB = 'b'.repeat(64);

describe('peer-to-peer on the relay', () => {
  let relay: TestRelay;
  beforeAll(async () => { relay = await startRelay({ p2p: { iceServers: [{ urls: 'stun:stun.example.org:3478' }] } }); });
  afterAll(async () => { await relay?.stop(); });

  const announce = (body: unknown) => fetch(`${relay.url}/api/p2p/announce`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const holders = async (piece: string, except?: string) =>
    ((await (await fetch(`${relay.url}/api/p2p/peers?piece=${piece}${except ? `&except=${except}` : ''}`)).json()) as { peers: string[] }).peers;

  it('says where to signal and which ICE servers to use', async () => {
    const c = await (await fetch(`${relay.url}/api/p2p`)).json();
    expect(c).toEqual({ enabled: true, path: '/p2p/', key: 'tabtrain', iceServers: [{ urls: 'stun:stun.example.org:3478' }] });
  });

  it('signals between two peers, expires messages to a gone one, refuses a wrong key and a taken id', async () => {
    const a = await signal(relay, 'peer-aaaa'), b = await signal(relay, 'peer-bbbb');
    await a.next('OPEN');
    await b.next('OPEN');
    a.ws.send(JSON.stringify({ type: 'OFFER', dst: 'peer-bbbb', payload: { sdp: 'x', connectionId: 'dc_1' } }));
    expect(await b.next('OFFER')).toEqual({ type: 'OFFER', src: 'peer-aaaa', dst: 'peer-bbbb', payload: { sdp: 'x', connectionId: 'dc_1' } });
    a.ws.send(JSON.stringify({ type: 'CANDIDATE', dst: 'peer-nobody', payload: {} }));
    expect(await a.next('EXPIRE')).toMatchObject({ src: 'peer-nobody', dst: 'peer-aaaa' });
    const wrongKey = await signal(relay, 'peer-cccc', { key: 'peerjs' });
    expect((await wrongKey.next('ERROR')).payload).toMatchObject({ msg: expect.stringMatching(/Invalid key/) });
    const taken = await signal(relay, 'peer-aaaa', { token: 'other' });
    await taken.next('ID-TAKEN');
    expect(await metric(relay.url, 'tabtrain_peers_connected')).toBe(2);
    a.ws.close();
    b.ws.close();
  });

  it('lists who holds a piece while they are connected, and counts what tabs report once', async () => {
    const a = await signal(relay, 'holder-aaaa'), b = await signal(relay, 'holder-bbbb');
    await a.next('OPEN');
    await b.next('OPEN');
    expect((await announce({ peerId: 'holder-aaaa', have: [hashA], received: 0, sent: 100 })).status).toBe(200);
    expect((await announce({ peerId: 'holder-bbbb', have: [hashA, hashB], received: 100, sent: 0 })).status).toBe(200);
    expect(await holders(hashA)).toEqual(['holder-bbbb', 'holder-aaaa']);
    expect(await holders(hashA, 'holder-bbbb')).toEqual(['holder-aaaa']);
    // totals: the same report again counts nothing, a larger one counts the growth
    await announce({ peerId: 'holder-bbbb', received: 100 });
    await announce({ peerId: 'holder-bbbb', received: 250 });
    expect(await metric(relay.url, 'tabtrain_peer_bytes_total', 'direction="received"')).toBe(250);
    expect(await metric(relay.url, 'tabtrain_peer_bytes_total', 'direction="sent"')).toBe(100);
    b.ws.close();
    await expect.poll(() => holders(hashB)).toEqual([]);
    expect(await holders(hashA)).toEqual(['holder-aaaa']);
    // back under the same id (signalling lost and regained): the same totals count nothing twice
    const again = await signal(relay, 'holder-bbbb');
    await again.next('OPEN');
    await announce({ peerId: 'holder-bbbb', have: [hashB], received: 250 });
    expect(await metric(relay.url, 'tabtrain_peer_bytes_total', 'direction="received"')).toBe(250);
    expect(await holders(hashB)).toEqual(['holder-bbbb']);
    again.ws.close();
    a.ws.close();
  });

  it('lets one tab fetch a piece nobody holds from the relay while the others wait for it', async () => {
    const a = await signal(relay, 'first-aaaa'), b = await signal(relay, 'second-bbbb');
    await a.next('OPEN');
    await b.next('OPEN');
    const hashC = 'c'.repeat(64);
    const ask = async (me: string) => (await (await fetch(`${relay.url}/api/p2p/peers?piece=${hashC}&except=${me}`)).json()) as { peers: string[]; waitMs?: number };
    expect(await ask('first-aaaa')).toEqual({ peers: [] });
    const second = await ask('second-bbbb');
    expect(second.peers).toEqual([]);
    expect(second.waitMs).toBeGreaterThan(0);
    await announce({ peerId: 'first-aaaa', have: [hashC] });
    expect(await ask('second-bbbb')).toEqual({ peers: ['first-aaaa'] });
    // a fetcher that leaves does not hold the others up
    const hashD = 'd'.repeat(64);
    await fetch(`${relay.url}/api/p2p/peers?piece=${hashD}&except=first-aaaa`);
    a.ws.close();
    await expect.poll(async () => (await (await fetch(`${relay.url}/api/p2p/peers?piece=${hashD}&except=second-bbbb`)).json())).toEqual({ peers: [] });
    b.ws.close();
  });

  it('answers bad announcements with a 4xx naming the field', async () => {
    const unknown = await announce({ peerId: 'not-connected', have: [hashA] });
    expect(unknown.status).toBe(409);
    expect((await unknown.json()).error.code).toBe('TT_ERR_UNKNOWN_PEER');
    const badHash = await announce({ peerId: 'holder-aaaa', have: ['nothex'] });
    expect(badHash.status).toBe(400);
    expect((await badHash.json()).error.message).toMatch(/have/);
    const badPiece = await fetch(`${relay.url}/api/p2p/peers?piece=xyz`);
    expect(badPiece.status).toBe(400);
    expect((await badPiece.json()).error.message).toMatch(/piece/);
  });

  it('gives every shard\'s SHA-256, and counts what it sends by kind', async () => {
    const { shards } = (await (await fetch(`${relay.url}/api/jobs/mnist-mlp/shards`)).json()) as { shards: { shard: number; bytes: number; sha256: string }[] };
    expect(shards.length).toBeGreaterThan(1);
    const before = await metric(relay.url, 'tabtrain_relay_egress_bytes_total', 'kind="shard"');
    const res = await fetch(`${relay.url}/api/jobs/mnist-mlp/shards/1`);
    const bytes = new Uint8Array(await res.arrayBuffer());
    expect(createHash('sha256').update(bytes).digest('hex')).toBe(shards[1].sha256);
    expect(bytes.byteLength).toBe(shards[1].bytes);
    // egress counts the shard as it went on the wire: compressed (fetch decoded it)
    expect(res.headers.get('content-encoding')).toBe('gzip');
    const sent = Number(res.headers.get('content-length'));
    expect(sent).toBeLessThan(bytes.byteLength);
    expect(await metric(relay.url, 'tabtrain_relay_egress_bytes_total', 'kind="shard"')).toBe(before + sent);
    const params = await (await fetch(`${relay.url}/api/jobs/mnist-mlp/versions/0/params`)).arrayBuffer();
    expect(await metric(relay.url, 'tabtrain_relay_egress_bytes_total', 'kind="model"')).toBeGreaterThanOrEqual(params.byteLength);
  });
});

describe('peer-to-peer turned off on the relay', () => {
  it('says so, and refuses announcements with a 404 that says to use the relay', async () => {
    const relay = await startRelay({ p2p: { enabled: false } });
    try {
      expect((await (await fetch(`${relay.url}/api/p2p`)).json()).enabled).toBe(false);
      const r = await fetch(`${relay.url}/api/p2p/announce`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
      expect(r.status).toBe(404);
      expect((await r.json()).error.code).toBe('TT_ERR_P2P_OFF');
    } finally {
      await relay.stop();
    }
  });
});
