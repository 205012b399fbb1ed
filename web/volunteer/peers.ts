// This tab's side of peer-to-peer sharing, on the page (RTCPeerConnection is not in Web Workers): a
// PeerJS peer signalling through the relay, WebRTC data channels to other tabs, the pieces this tab
// holds (in memory, the newest kept up to a byte cap) and the relay's tracker told what they are.
// A piece asked for goes to at most a few holders the relay names; bytes that do not hash to the piece's
// name drop the peer that sent them, and after every holder fails the worker fetches from the relay.
// Serving is capped (bytes per second, peers at once) and stops while training is paused.
//   on a data channel (ordered, reliable; strings are control, binary is piece bytes):
//   → {t:'get', hash}   ← {t:'piece', hash, bytes[, gzip]} then the bytes in CHUNK-sized messages | {t:'miss', hash}
// A piece goes gzipped (`gzip`: the compressed length; `bytes` stays the piece's own) when that is smaller,
// as the relay sends shards and deltas compressed: peers then carry what the relay would have, and the
// bytes counted (`received`, `sent`, the upload cap) are the bytes on the channel.
import { Peer, type DataConnection } from 'peerjs';
import type { P2pConfig } from '../../shared/protocol/p2p.ts';
import { sha256Hex } from '../../shared/volunteer/pieces.ts';
import { gunzipped, gzipped } from './piece-gzip.ts';

export type ShareLimits = {
  /** bytes per second this tab sends to all peers together */
  bytesPerSec: number;
  /** peers this tab sends pieces to at once (others are told it is busy and ask another holder) */
  maxPeers: number;
  /** bytes of pieces held in memory for others (oldest dropped first) */
  maxHeldBytes: number;
};
export const defaultLimits: ShareLimits = { bytesPerSec: 2 * 1024 * 1024, maxPeers: 4, maxHeldBytes: 256 * 1024 * 1024 };

export type ShareStats = {
  peerId: string; received: number; sent: number; rejected: number; droppedPeers: number; held: number; serving: boolean;
  /** asks of a peer that brought nothing (busy, gone, too slow) */
  missed: number;
};

/** Under the SCTP message size every browser takes. */
const CHUNK = 64 * 1024;
/** Holders tried for one piece before the relay. */
const HOLDERS_TRIED = 3;
/** Data channels other tabs may hold open to this one (idle ones cost little; transfers are capped by maxPeers). */
const MAX_INBOUND = 32;
const OPEN_TIMEOUT_MS = 8_000;
const REPORT_EVERY_MS = 2_000;
const RECONNECT_MS = 2_000;
/** A piece must arrive at least this fast (plus a fixed allowance) or the next holder is tried. */
const MIN_BYTES_PER_SEC = 128 * 1024;
/** Longest wait for another tab to fetch a piece from the relay before fetching it too. */
const MAX_WAIT_MS = 6_000;

/** size: bytes to come on the channel; gzip: they are the piece gzipped */
type Pending = { hash: string; expect: number; size?: number; gzip?: boolean; parts: Uint8Array[]; got: number; done(b: Uint8Array | undefined): void };
/** missed: the last answer was a clean miss (the channel is in step and can be asked again) */
type Link = { conn: DataConnection; pending?: Pending; queue: Promise<unknown>; missed?: boolean };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const randomId = () => `tab-${crypto.randomUUID()}`;

export class PeerShare {
  readonly stats: ShareStats;
  private readonly held = new Map<string, Uint8Array>(); // insertion order: oldest first
  /** the gzipped form of held pieces, made on first serve */
  private readonly packed = new Map<string, Promise<Uint8Array | undefined>>();
  private heldBytes = 0;
  private readonly links = new Map<string, Link>(); // peers this tab asked
  private readonly dropped = new Set<string>();
  private readonly lastFrom = new Map<string, string>();
  private inbound = 0;
  private sending = 0;
  private nextFree = 0; // when the upload cap next allows bytes out
  private unannounced: string[] = [];
  private reported = { received: -1, sent: -1 };
  private timer: ReturnType<typeof setInterval>;

  private constructor(private readonly server: string, private readonly peer: Peer, private limits: ShareLimits) {
    this.stats = { peerId: peer.id, received: 0, sent: 0, rejected: 0, droppedPeers: 0, held: 0, serving: true, missed: 0 };
    peer.on('connection', (conn) => this.serve(conn));
    // signalling lost (the relay restarted): connect again, and say again what this tab holds (the
    // relay's tracker is in memory); data channels already open carry on meanwhile
    peer.on('disconnected', () => setTimeout(() => { if (!peer.destroyed && peer.disconnected) peer.reconnect(); }, RECONNECT_MS));
    peer.on('open', () => { this.unannounced = [...this.held.keys()]; this.reported = { received: -1, sent: -1 }; void this.report(); });
    peer.on('error', () => undefined); // a peer that is gone or unreachable: asks time out and go to the relay
    this.timer = setInterval(() => void this.report(), REPORT_EVERY_MS);
  }

  /** Connects to the relay's signalling; undefined when the relay has sharing off or cannot be reached. */
  static async open(server: string, limits: ShareLimits = defaultLimits): Promise<PeerShare | undefined> {
    const config = (await (await fetch(`${server}/api/p2p`)).json()) as P2pConfig;
    if (!config.enabled) return undefined;
    const u = new URL(server);
    const peer = new Peer(randomId(), {
      host: u.hostname, port: Number(u.port) || (u.protocol === 'https:' ? 443 : 80), secure: u.protocol === 'https:',
      path: config.path, key: config.key, config: { iceServers: config.iceServers }, debug: 0,
    });
    const opened = await new Promise<boolean>((resolve) => {
      const t = setTimeout(() => resolve(false), OPEN_TIMEOUT_MS);
      peer.once('open', () => { clearTimeout(t); resolve(true); });
      peer.once('error', () => { clearTimeout(t); resolve(false); });
    });
    if (!opened) { peer.destroy(); return undefined; }
    return new PeerShare(server, peer, limits);
  }

  setLimits(l: Partial<ShareLimits>): void { this.limits = { ...this.limits, ...l }; }

  /** Paused (tab hidden, on battery, paused by the person): serve nothing, still take. */
  setServing(on: boolean): void { this.stats.serving = on; }

  // ---------------------------------------------------------------- taking

  async get(hash: string, size: number): Promise<Uint8Array | undefined> {
    const q = new URLSearchParams({ piece: hash, except: this.peer.id });
    let peers: string[] = [];
    // nobody holds it yet but another tab is fetching it from the relay: wait for that tab, a while
    for (const until = Date.now() + MAX_WAIT_MS; ;) {
      const res = await fetch(`${this.server}/api/p2p/peers?${q}`).catch(() => undefined);
      if (!res?.ok) return undefined;
      const r = (await res.json()) as { peers: string[]; waitMs?: number };
      peers = r.peers;
      if (peers.length || !r.waitMs || Date.now() + r.waitMs > until) break;
      await sleep(r.waitMs);
    }
    // a random few of the holders, so the newest holder is not asked by everyone
    const holders = peers.filter((p) => !this.dropped.has(p)).map((p) => [Math.random(), p] as const).sort((a, b) => a[0] - b[0]).map(([, p]) => p);
    for (const from of holders.slice(0, HOLDERS_TRIED)) {
      const wire = await this.ask(from, hash, size).catch(() => undefined);
      if (!wire) { this.stats.missed++; continue; }
      const got = wire.gzip ? await gunzipped(wire.bytes, size) : wire.bytes;
      if (!got || (await sha256Hex(got)) !== hash) {
        this.stats.rejected += wire.bytes.byteLength;
        this.drop(from);
        continue;
      }
      this.stats.received += wire.bytes.byteLength;
      this.lastFrom.set(hash, from);
      this.have(hash, got);
      return got;
    }
    return undefined;
  }

  /** This tab is making the piece (a version from deltas): asking for it while nobody holds it makes the
   * relay tell other tabs to wait for this one rather than fetch it from the relay too. */
  will(hash: string): void {
    if (this.held.has(hash)) return;
    void fetch(`${this.server}/api/p2p/peers?${new URLSearchParams({ piece: hash, except: this.peer.id })}`).catch(() => undefined);
  }

  /** The worker found bytes from this tab's peers that do not match: whoever sent them is dropped. */
  bad(hash: string): void {
    const from = this.lastFrom.get(hash);
    if (from) this.drop(from);
  }

  private drop(peer: string): void {
    if (!this.dropped.has(peer)) this.stats.droppedPeers++;
    this.dropped.add(peer);
    this.links.get(peer)?.conn.close();
    this.links.delete(peer);
  }

  private async link(to: string): Promise<Link> {
    const known = this.links.get(to);
    if (known?.conn.open) return known;
    const conn = this.peer.connect(to, { reliable: true, serialization: 'raw' });
    const l: Link = { conn, queue: Promise.resolve() };
    this.links.set(to, l);
    conn.on('data', (d) => this.receive(l, d));
    conn.on('close', () => { l.pending?.done(undefined); if (this.links.get(to) === l) this.links.delete(to); });
    conn.on('error', () => conn.close());
    const open = await new Promise<boolean>((resolve) => {
      const t = setTimeout(() => resolve(false), OPEN_TIMEOUT_MS);
      conn.once('open', () => { clearTimeout(t); resolve(true); });
      conn.once('close', () => { clearTimeout(t); resolve(false); });
    });
    if (!open) { conn.close(); this.links.delete(to); throw new Error(`no data channel to ${to}`); }
    return l;
  }

  /** One piece from one peer (one request at a time on a channel). */
  private async ask(to: string, hash: string, size: number): Promise<{ bytes: Uint8Array; gzip: boolean } | undefined> {
    const l = await this.link(to);
    let gzip = false;
    const run = l.queue.then(() => new Promise<Uint8Array | undefined>((resolve) => {
      const t = setTimeout(() => finish(undefined), 10_000 + (1000 * size) / MIN_BYTES_PER_SEC);
      const finish = (b: Uint8Array | undefined) => { clearTimeout(t); gzip = p.gzip === true; if (l.pending === p) l.pending = undefined; resolve(b); };
      const p: Pending = { hash, expect: size, parts: [], got: 0, done: finish };
      l.pending = p;
      l.missed = false;
      l.conn.send(JSON.stringify({ t: 'get', hash }));
    }));
    l.queue = run.catch(() => undefined);
    const got = await run;
    // a timeout or a wrong size: the next ask opens a fresh channel (none left mid-piece)
    if (!got && !l.missed) { l.conn.close(); if (this.links.get(to) === l) this.links.delete(to); }
    return got && { bytes: got, gzip };
  }

  private receive(l: Link, d: unknown): void {
    const p = l.pending;
    if (typeof d === 'string') {
      let m: { t?: string; hash?: string; bytes?: number; gzip?: number };
      try { m = JSON.parse(d) as typeof m; } catch { return; }
      if (!p || m.hash !== p.hash) return;
      // only the size the relay gave is taken (gzipped: less than it): a peer cannot make this tab buffer more
      const gzip = typeof m.gzip === 'number' && Number.isInteger(m.gzip) && m.gzip > 0 && m.gzip < p.expect;
      if (m.t === 'piece' && m.bytes === p.expect && (m.gzip === undefined || gzip)) {
        p.size = gzip ? m.gzip : m.bytes;
        p.gzip = gzip;
        if (p.size === 0) p.done(new Uint8Array(0));
      }
      else { l.missed = m.t === 'miss'; p.done(undefined); }
      return;
    }
    if (!p || p.size === undefined || !(d instanceof ArrayBuffer)) return;
    p.parts.push(new Uint8Array(d));
    p.got += d.byteLength;
    if (p.got < p.size) return;
    if (p.got > p.size) return p.done(undefined);
    const out = new Uint8Array(p.got);
    let at = 0;
    for (const part of p.parts) { out.set(part, at); at += part.length; }
    p.done(out);
  }

  // ---------------------------------------------------------------- holding and serving

  /** Holds a piece (checked by whoever passes it) and tells the relay this tab has it. */
  have(hash: string, bytes: Uint8Array): void {
    if (this.held.has(hash) || bytes.byteLength > this.limits.maxHeldBytes) return;
    this.held.set(hash, bytes);
    this.heldBytes += bytes.byteLength;
    for (const [h, b] of this.held) {
      if (this.heldBytes <= this.limits.maxHeldBytes) break;
      this.held.delete(h);
      this.packed.delete(h);
      this.heldBytes -= b.byteLength;
    }
    this.stats.held = this.held.size;
    this.unannounced.push(hash);
    void this.report();
  }

  private serve(conn: DataConnection): void {
    if (this.inbound >= MAX_INBOUND) {
      conn.on('open', () => conn.close());
      return;
    }
    this.inbound++;
    let chain = Promise.resolve();
    conn.on('close', () => { this.inbound--; });
    conn.on('error', () => conn.close());
    conn.on('data', (d) => {
      if (typeof d !== 'string') return;
      let m: { t?: string; hash?: string };
      try { m = JSON.parse(d) as typeof m; } catch { return; }
      if (m.t !== 'get' || typeof m.hash !== 'string') return;
      const hash = m.hash;
      chain = chain.then(() => this.send(conn, hash)).catch(() => conn.close());
    });
  }

  private async send(conn: DataConnection, hash: string): Promise<void> {
    const piece = this.stats.serving && this.sending < this.limits.maxPeers ? this.held.get(hash) : undefined;
    if (!piece) { await conn.send(JSON.stringify({ t: 'miss', hash })); return; }
    this.sending++;
    try {
      await this.stream(conn, hash, piece);
    } finally {
      this.sending--;
    }
  }

  private async stream(conn: DataConnection, hash: string, piece: Uint8Array): Promise<void> {
    let packed = this.packed.get(hash);
    if (!packed) {
      packed = gzipped(piece).catch(() => undefined);
      if (this.held.has(hash)) this.packed.set(hash, packed);
    }
    const z = await packed;
    await conn.send(JSON.stringify({ t: 'piece', hash, bytes: piece.byteLength, ...(z ? { gzip: z.byteLength } : {}) }));
    const body = z ?? piece;
    for (let at = 0; at < body.byteLength && conn.open; at += CHUNK) {
      const chunk = body.slice(at, at + CHUNK);
      // the cap is for the whole tab: each chunk waits for its slot
      const now = Date.now();
      const slot = Math.max(now, this.nextFree);
      this.nextFree = slot + (1000 * chunk.byteLength) / this.limits.bytesPerSec;
      if (slot > now) await sleep(slot - now);
      await conn.send(chunk.buffer);
      this.stats.sent += chunk.byteLength;
    }
  }

  /** Tells the relay what this tab now holds and how many bytes it carried (totals, so a retry counts once). */
  private async report(): Promise<void> {
    const have = this.unannounced.splice(0, 256);
    if (!have.length && this.reported.received === this.stats.received && this.reported.sent === this.stats.sent) return;
    const body = { peerId: this.peer.id, have, received: this.stats.received, sent: this.stats.sent };
    const res = await fetch(`${this.server}/api/p2p/announce`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }).catch(() => undefined);
    if (res?.ok) this.reported = { received: body.received, sent: body.sent };
    else this.unannounced.unshift(...have.filter((h) => this.held.has(h)));
  }

  close(): void {
    clearInterval(this.timer);
    void this.report();
    this.peer.destroy();
  }
}
