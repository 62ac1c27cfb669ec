// A token bucket per principal: `ratePerSec` calls a second on average, bursts of `burst`.
// The map of buckets is bounded (least recently used evicted), so many principals cannot
// grow the gateway's memory; an evicted principal simply starts with a full bucket.

export interface RateLimit {
  ratePerSec: number;
  burst: number;
}

export interface RateDecision {
  ok: boolean;
  /** When refused: how long until one call's worth of tokens is back, ms. */
  retryAfterMs: number;
}

export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(readonly limit: RateLimit, private readonly maxKeys = 100_000, private readonly now: () => number = () => performance.now()) {}

  take(key: string, cost = 1): RateDecision {
    const t = this.now();
    let b = this.buckets.get(key);
    if (b) this.buckets.delete(key); // re-inserted below: Map order is recency
    else b = { tokens: this.limit.burst, at: t };
    b.tokens = Math.min(this.limit.burst, b.tokens + ((t - b.at) / 1000) * this.limit.ratePerSec);
    b.at = t;
    this.buckets.set(key, b);
    if (this.buckets.size > this.maxKeys) this.buckets.delete(this.buckets.keys().next().value!);
    if (b.tokens >= cost) {
      b.tokens -= cost;
      return { ok: true, retryAfterMs: 0 };
    }
    return { ok: false, retryAfterMs: Math.max(1, Math.ceil(((cost - b.tokens) / this.limit.ratePerSec) * 1000)) };
  }

  get size(): number {
    return this.buckets.size;
  }
}

/** `off`, or `<calls per second>/<burst>` (e.g. `50/100`). Returns the reason it is neither. */
export function parseRateLimit(value: string): RateLimit | 'off' | string {
  if (value === 'off') return 'off';
  const m = /^(\d+(?:\.\d+)?)\/(\d+)$/.exec(value);
  if (!m) return 'must be off or <calls per second>/<burst>, e.g. 50/100';
  const ratePerSec = Number(m[1]);
  const burst = Number(m[2]);
  if (!(ratePerSec > 0) || burst < 1) return 'the rate must be above 0 and the burst at least 1';
  return { ratePerSec, burst };
}
