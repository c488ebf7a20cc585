import { TributaryError } from '../errors';

/** Options of ReplayGuard. */
export interface ReplayGuardOptions {
  /** How far a signed time may be from the clock (ms); a nonce is remembered for twice this. */
  windowMs: number;
  /** Nonces remembered per key at most; past it that key is refused (RATE_LIMITED) until old ones expire. @default 10000 */
  maxPerKey?: number;
  /** Nonces remembered in all at most; past it every key is refused until old ones expire. @default 1000000 */
  maxTotal?: number;
  /** The clock, ms. @default Date.now */
  now?: () => number;
}

/**
 * Refuses a (key, nonce) pair seen before, with memory bounded per key and in total.
 *
 * A signature is only accepted when its signed time lies within `windowMs` of the clock, so a nonce
 * needs remembering only until that time has left the window: each entry is kept `2 × windowMs` from
 * when it was first seen (an upper bound on `created + windowMs`), then forgotten. Nothing is ever
 * evicted early, since forgetting a live nonce would re-open it to replay: when a key (or everyone)
 * reaches its cap, new requests are refused with RATE_LIMITED instead, and the cap frees itself as
 * entries expire. Expiry is O(1) amortised: entries sit in a queue in insertion order, which is also
 * expiry order. At ~100 bytes per entry the default global cap is about 100 MB.
 */
export class ReplayGuard {
  private readonly byKey = new Map<string, Set<string>>();
  private readonly queue: Array<{ expiresAt: number; key: string; nonce: string }> = [];
  private head = 0;
  private readonly maxPerKey: number;
  private readonly maxTotal: number;
  private readonly now: () => number;

  constructor(private readonly options: ReplayGuardOptions) {
    this.maxPerKey = options.maxPerKey ?? 10_000;
    this.maxTotal = options.maxTotal ?? 1_000_000;
    this.now = options.now ?? Date.now;
  }

  /** Nonces currently remembered. */
  get size(): number {
    return this.queue.length - this.head;
  }

  /** Records the nonce; throws AUTH_REPLAY if this key used it within the window, RATE_LIMITED at a cap. */
  check(key: string, nonce: string): void {
    const now = this.now();
    this.expire(now);
    let seen = this.byKey.get(key);
    if (seen?.has(nonce))
      throw new TributaryError('AUTH_REPLAY', `Nonce ${nonce.slice(0, 40)} was already used by this key.`);
    const retryAfterSeconds = Math.max(1, Math.ceil(((this.queue[this.head]?.expiresAt ?? now) - now) / 1000));
    if (this.size >= this.maxTotal) {
      throw new TributaryError('RATE_LIMITED', 'Too many signed requests in the replay window; retry later.', {
        details: { scope: 'nonces', retryAfterSeconds },
      });
    }
    if ((seen?.size ?? 0) >= this.maxPerKey) {
      throw new TributaryError(
        'RATE_LIMITED',
        `This key signed more than ${this.maxPerKey} requests in the replay window; retry later.`,
        { details: { scope: 'nonces-per-key', retryAfterSeconds } },
      );
    }
    if (!seen) {
      seen = new Set();
      this.byKey.set(key, seen);
    }
    seen.add(nonce);
    this.queue.push({ expiresAt: now + 2 * this.options.windowMs, key, nonce });
  }

  private expire(now: number): void {
    while (this.head < this.queue.length && this.queue[this.head].expiresAt <= now) {
      const { key, nonce } = this.queue[this.head++];
      const seen = this.byKey.get(key);
      seen?.delete(nonce);
      if (seen?.size === 0) this.byKey.delete(key);
    }
    // Compact once the consumed prefix dominates, so the array does not grow forever.
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
  }
}
