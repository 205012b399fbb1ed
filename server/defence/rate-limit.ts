// Token-bucket rate limits keyed by address or identity (identity creation, task requests, uploads).
// Memory is bounded: past maxKeys the least recently used key is dropped, which only ever makes the
// limiter more lenient for a key nobody has used in a while, never crashes or grows without end.
// `memoryShortLived()` is what one relay keeps in process (the embedded SQLite store: one file, one relay);
// relays sharing a Postgres database keep the same buckets in a table (server/store/postgres/defence.ts).

export type RateLimitOptions = {
  /** Burst size: requests allowed at once. */
  capacity: number;
  /** Tokens regained per second. */
  refillPerSecond: number;
  /** Keys tracked at most. */
  maxKeys?: number;
};

export type RateDecision = { ok: true } | { ok: false; retryAfterSeconds: number };

/** One refill-and-take step of a bucket: what every implementation computes (the SQL one too). */
export function refill(tokens: number, at: number, now: number, o: { capacity: number; refillPerSecond: number }): number {
  return Math.min(o.capacity, tokens + (Math.max(0, now - at) / 1000) * o.refillPerSecond);
}

/** The answer for a bucket that held `tokens` after refilling: take `cost` or say when to come back. */
export function decide(tokens: number, cost: number, refillPerSecond: number): RateDecision {
  return tokens >= cost ? { ok: true } : { ok: false, retryAfterSeconds: Math.ceil((cost - tokens) / refillPerSecond) };
}

export function checkLimit(o: RateLimitOptions): void {
  if (!(o.capacity >= 1) || !(o.refillPerSecond > 0)) throw new Error('rate limit needs capacity ≥ 1 and refillPerSecond > 0');
}

/** Buckets of any limits in one map (the limit comes with each take), least recently used first. */
export class TokenBuckets {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  constructor(private readonly maxKeys = 100_000) {}

  take(key: string, o: { capacity: number; refillPerSecond: number }, nowMs: number, cost = 1): RateDecision {
    let b = this.buckets.get(key);
    if (b) {
      this.buckets.delete(key); // re-insert below: Map order = least recently used first
      b.tokens = refill(b.tokens, b.at, nowMs, o);
      b.at = Math.max(b.at, nowMs);
    } else {
      b = { tokens: o.capacity, at: nowMs };
      if (this.buckets.size >= this.maxKeys) this.buckets.delete(this.buckets.keys().next().value as string);
    }
    this.buckets.set(key, b);
    const d = decide(b.tokens, cost, o.refillPerSecond);
    if (d.ok) b.tokens -= cost;
    return d;
  }

  /** Drops buckets untouched since `idleSince` (full again by then: the same as never used). */
  prune(idleSince: number): void {
    for (const [k, b] of this.buckets) if (b.at < idleSince) this.buckets.delete(k);
  }

  get size(): number {
    return this.buckets.size;
  }
}

/** One limit's buckets (the operator plugin's submissions, tests). */
export class RateLimiter {
  private readonly buckets: TokenBuckets;

  constructor(private readonly opts: RateLimitOptions) {
    checkLimit(opts);
    this.buckets = new TokenBuckets(opts.maxKeys ?? 100_000);
  }

  /** Takes one token for key at time nowMs (pass Date.now()). */
  take(key: string, nowMs: number, cost = 1): RateDecision {
    return this.buckets.take(key, this.opts, nowMs, cost);
  }

  get size(): number {
    return this.buckets.size;
  }
}

/** Signatures seen within their window, oldest first: each is good once. Bounded like the buckets. */
export class SeenOnce {
  private readonly seen = new Map<string, number>();
  constructor(private readonly maxKeys = 500_000) {}

  /** True the first time `key` comes, remembered until `until`. */
  use(key: string, until: number, now: number): boolean {
    for (const [k, u] of this.seen) { if (u > now && this.seen.size < this.maxKeys) break; this.seen.delete(k); }
    if (this.seen.has(key)) return false;
    this.seen.set(key, until);
    return true;
  }

  prune(now: number): void {
    for (const [k, u] of this.seen) if (u <= now) this.seen.delete(k);
  }
}

/** The in-process short-lived defence state of one relay: rate-limit buckets and the replay window. */
export function memoryShortLived() {
  const buckets = new TokenBuckets();
  const seen = new SeenOnce();
  return {
    takeTokens: async (bucket: string, limit: { capacity: number; refillPerSecond: number }, now: number, cost = 1) => buckets.take(bucket, limit, now, cost),
    useRequestSignature: async (signature: string, until: number, now: number) => seen.use(signature, until, now),
    pruneShortLived: async (now: number, idleSince: number) => { seen.prune(now); buckets.prune(idleSince); },
  };
}

/** Counts refusals by reason, for /metrics and the dashboard. */
export class RefusalCounter {
  private readonly counts = new Map<string, number>();
  add(reason: string): void {
    this.counts.set(reason, (this.counts.get(reason) ?? 0) + 1);
  }
  snapshot(): Record<string, number> {
    return Object.fromEntries([...this.counts].sort(([a], [b]) => a.localeCompare(b)));
  }
}
