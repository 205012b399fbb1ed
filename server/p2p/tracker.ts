// Who holds which piece: the tabs that announced it and are still connected to signalling. In memory
// only: a relay restart forgets it, and tabs announce again as they fetch. Also turns the byte totals
// tabs report into growth, so a repeated or retried report is counted once.

/** Pieces one tab may be listed for; past it, its oldest are forgotten (it may still hold them). */
const MAX_PIECES_PER_PEER = 4096;
/** Tabs whose reported totals are remembered, newest reports kept. */
const MAX_TOTALS = 100_000;

export class PieceTracker {
  private readonly holders = new Map<string, Map<string, number>>(); // piece → peer → announced at
  private readonly held = new Map<string, Set<string>>(); // peer → pieces, oldest first
  private readonly totals = new Map<string, { received: number; sent: number }>();
  /** pieces nobody holds yet, and the tab that was told to fetch each from the relay */
  private readonly fetching = new Map<string, { peer: string; at: number }>();
  private seq = 0;

  have(peer: string, pieces: readonly string[]): void {
    let mine = this.held.get(peer);
    if (!mine) this.held.set(peer, (mine = new Set()));
    for (const p of pieces) {
      mine.delete(p);
      mine.add(p);
      let h = this.holders.get(p);
      if (!h) this.holders.set(p, (h = new Map()));
      h.set(peer, ++this.seq);
      this.fetching.delete(p);
    }
    for (const old of mine) {
      if (mine.size <= MAX_PIECES_PER_PEER) break;
      mine.delete(old);
      this.drop(old, peer);
    }
  }

  /**
   * Whom to ask for a piece: holders, or, when none holds it yet, whether to wait for the tab already
   * fetching it from the relay (a new version is wanted by every tab at once: one fetches it, the others
   * take it from that one) or to fetch it itself. A fetcher that has not announced within `graceMs`
   * (slow, or gone) loses the piece to the next asker.
   */
  route(piece: string, n: number, asker: string | undefined, now: number, graceMs: number): { peers: string[]; waitMs?: number } {
    const peers = this.holdersOf(piece, n, asker);
    if (peers.length || !asker) return { peers };
    const f = this.fetching.get(piece);
    if (f && f.peer !== asker && now - f.at < graceMs) return { peers, waitMs: Math.min(1000, graceMs - (now - f.at)) };
    if (!f || f.peer !== asker) this.fetching.set(piece, { peer: asker, at: now });
    // remembered only while someone might still ask; old entries go when the map grows
    if (this.fetching.size > 4096) for (const [k, v] of this.fetching) if (now - v.at > graceMs) this.fetching.delete(k);
    return { peers };
  }

  /** Up to n holders of a piece other than `except`, the most recent announcement first. */
  holdersOf(piece: string, n: number, except?: string): string[] {
    const h = this.holders.get(piece);
    if (!h) return [];
    return [...h].filter(([p]) => p !== except).sort((a, b) => b[1] - a[1]).slice(0, n).map(([p]) => p);
  }

  /** A tab gone from signalling serves nothing any more. */
  forget(peer: string): void {
    for (const p of this.held.get(peer) ?? []) this.drop(p, peer);
    this.held.delete(peer);
    // totals stay (a while): a tab that reconnects under the same id reports the same totals again
    for (const [piece, f] of this.fetching) if (f.peer === peer) this.fetching.delete(piece);
  }

  /** How much the reported totals grew since this tab's last report. */
  report(peer: string, received: number, sent: number): { received: number; sent: number } {
    const last = this.totals.get(peer) ?? { received: 0, sent: 0 };
    this.totals.delete(peer); // re-inserted: the map is oldest-first, and the oldest go past MAX_TOTALS
    this.totals.set(peer, { received: Math.max(last.received, received), sent: Math.max(last.sent, sent) });
    for (const old of this.totals.keys()) { if (this.totals.size <= MAX_TOTALS) break; this.totals.delete(old); }
    return { received: Math.max(0, received - last.received), sent: Math.max(0, sent - last.sent) };
  }

  pieces(): number {
    return this.holders.size;
  }

  private drop(piece: string, peer: string): void {
    const h = this.holders.get(piece);
    h?.delete(peer);
    if (h?.size === 0) this.holders.delete(piece);
  }
}
