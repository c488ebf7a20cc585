import { TributaryError } from '../errors';

/**
 * Remembers nonces of timestamped messages (handshakes, signed REST requests) for as long as their
 * timestamp can still pass the freshness window, then forgets them: a message whose timestamp is
 * within ±windowMs is accepted only if its nonce was not seen, and a nonce inserted at time i can only
 * be replayed until i + 2·windowMs, so entries are dropped after that (oldest first, in insertion
 * order). Bounded globally: when `maxEntries` unexpired nonces are held, new messages are refused
 * (RATE_LIMITED) rather than evicting a nonce that could then be replayed.
 */
export class TimedNonceCache {
  private readonly seen = new Map<string, number>();

  constructor(
    private readonly windowMs: number,
    private readonly maxEntries = 1_000_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** False if `key` already used `nonce` within the window; otherwise records it. */
  checkAndRemember(key: string, nonce: string): boolean {
    const now = this.now();
    this.sweep(now);
    const id = `${key}:${nonce}`;
    if (this.seen.has(id)) return false;
    if (this.seen.size >= this.maxEntries) {
      throw new TributaryError(
        'RATE_LIMITED',
        `Too many signed messages in the last ${Math.round((2 * this.windowMs) / 1000)} s; try again later.`,
        { details: { retryAfterMs: 2 * this.windowMs } },
      );
    }
    this.seen.set(id, now + 2 * this.windowMs);
    return true;
  }

  get size(): number {
    return this.seen.size;
  }

  private sweep(now: number): void {
    for (const [id, expiry] of this.seen) {
      if (expiry > now) break;
      this.seen.delete(id);
    }
  }
}
