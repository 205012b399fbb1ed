// Content-addressed pieces (a version's params or delta, a data shard) by the cheapest way there: other
// volunteers first, when the host has a way to reach them (a tab's WebRTC peers, web/volunteer/peers.ts),
// the relay otherwise. A piece is named by the SHA-256 the relay gave for it, and bytes from a peer that
// do not hash to that name are thrown away (and the peer reported) before anything reads them: a peer
// can cost a little time, never a wrong model or shard. No DOM here: the host passes its PeerSource in.

/** Other volunteers, as the host reaches them. */
export interface PeerSource {
  /** The piece from some peer, or undefined when none has it (or none answered in time). */
  get(hash: string, bytes: number): Promise<Uint8Array | undefined>;
  /** The last bytes `get` gave for this piece did not hash to it: drop whoever sent them. */
  bad(hash: string): void;
  /** This volunteer now holds the piece (checked): it may serve it to others. */
  have(hash: string, bytes: Uint8Array): void;
  /** This volunteer is making the piece (a version from deltas): others may wait for it, not the relay. */
  will?(hash: string): void;
}

/** Where a volunteer's pieces came from, in bytes. */
export type PieceCounts = { fromPeers: number; fromRelay: number; rejected: number };

export async function sha256Hex(bytes: ArrayBufferView): Promise<string | undefined> {
  const subtle = globalThis.crypto?.subtle; // absent on insecure http origins: hashes are not checked there
  if (!subtle) return undefined;
  const d = new Uint8Array(await subtle.digest('SHA-256', new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength) as Uint8Array<ArrayBuffer>));
  return Array.from(d, (b) => b.toString(16).padStart(2, '0')).join('');
}

export type PieceFetcher = {
  /** The piece named `hash` (`bytes` long): from a peer when one has it, else `fromRelay()`. */
  fetch(hash: string, bytes: number, fromRelay: () => Promise<Uint8Array>): Promise<Uint8Array>;
  /** The piece from a peer only (checked), or undefined; never the relay. Undefined without peers. */
  fromPeers(hash: string, bytes: number): Promise<Uint8Array | undefined>;
  /** Says this volunteer is making the piece (and will offer it). */
  will(hash: string): void;
  /** Whether peers are asked at all (a host with a peer source that can check hashes). */
  readonly withPeers: boolean;
  /** Bytes this volunteer holds and has checked (from its cache, or the relay): offered to peers. */
  offer(hash: string, bytes: ArrayBufferView): void;
  counts: PieceCounts;
};

/** The source chain: peers (when given and hashes can be checked), then the relay. */
export function pieceFetcher(peers: PeerSource | undefined): PieceFetcher {
  const counts: PieceCounts = { fromPeers: 0, fromRelay: 0, rejected: 0 };
  const offered = new Set<string>();
  const offer = (hash: string, b: ArrayBufferView) => {
    if (!peers || offered.has(hash)) return;
    offered.add(hash);
    peers.have(hash, new Uint8Array(b.buffer, b.byteOffset, b.byteLength));
  };
  const canCheck = () => globalThis.crypto?.subtle !== undefined;
  const fromPeers = async (hash: string, bytes: number): Promise<Uint8Array | undefined> => {
    if (!peers || !canCheck()) return undefined;
    const got = await peers.get(hash, bytes).catch(() => undefined);
    if (got && (await sha256Hex(got)) === hash) {
      counts.fromPeers += got.byteLength;
      offer(hash, got);
      return got;
    }
    if (got) { counts.rejected += got.byteLength; peers.bad(hash); }
    return undefined;
  };
  return {
    counts,
    offer,
    fromPeers,
    will: (hash) => { if (!offered.has(hash)) peers?.will?.(hash); },
    get withPeers() { return peers !== undefined && canCheck(); },
    async fetch(hash, bytes, fromRelay) {
      const got = await fromPeers(hash, bytes);
      if (got) return got;
      const b = await fromRelay();
      counts.fromRelay += b.byteLength;
      // only what hashes to its name is passed on (a relay answer cut short must not spread)
      if (peers && canCheck() && (await sha256Hex(b)) === hash) offer(hash, b);
      return b;
    },
  };
}
