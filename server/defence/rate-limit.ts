// Token-bucket rate limits keyed by address or identity (identity creation, task requests, uploads).
// Memory is bounded: past maxKeys the least recently used key is dropped, which only ever makes the
// limiter more lenient for a key nobody has used in a while, never crashes or grows without end.

export type RateLimitOptions = {
  /** Burst size: requests allowed at once. */
  capacity: number;
  /** Tokens regained per second. */
  refillPerSecond: number;
  /** Keys tracked at most. */
  maxKeys?: number;
};

export type RateDecision = { ok: true } | { ok: false; retryAfterSeconds: number };

export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private readonly maxKeys: number;

  constructor(private readonly opts: RateLimitOptions) {
    if (!(opts.capacity >= 1) || !(opts.refillPerSecond > 0)) throw new Error('rate limit needs capacity ≥ 1 and refillPerSecond > 0');
    this.maxKeys = opts.maxKeys ?? 100_000;
  }

  /** Takes one token for key at time nowMs (pass Date.now()). */
  take(key: string, nowMs: number, cost = 1): RateDecision {
    const { capacity, refillPerSecond } = this.opts;
    let b = this.buckets.get(key);
    if (b) {
      this.buckets.delete(key); // re-insert below: Map order = least recently used first
      b.tokens = Math.min(capacity, b.tokens + (Math.max(0, nowMs - b.at) / 1000) * refillPerSecond);
      b.at = nowMs;
    } else {
      b = { tokens: capacity, at: nowMs };
      if (this.buckets.size >= this.maxKeys) this.buckets.delete(this.buckets.keys().next().value as string);
    }
    this.buckets.set(key, b);
    if (b.tokens >= cost) {
      b.tokens -= cost;
      return { ok: true };
    }
    return { ok: false, retryAfterSeconds: Math.ceil((cost - b.tokens) / refillPerSecond) };
  }

  get size(): number {
    return this.buckets.size;
  }
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
