import mongoose from 'mongoose';
import { TributaryError } from '../../shared/errors';

/**
 * Whether a store write failed without writing and may simply be sent again.
 *
 * - FerretDB's SQLite backend answers `database is locked (5) (SQLITE_BUSY)` (code 1, InternalError)
 *   when a write transaction cannot take SQLite's single write lock: its updates read outside the
 *   transaction and write inside a deferred one, and under WAL the upgrade to the write lock fails at
 *   once, without waiting out `busy_timeout`, when another connection committed since the read.
 *   FerretDB keeps up to 100 SQLite connections open, so 100 concurrent upserts collide constantly.
 * - MongoDB labels transient failures `RetryableWriteError` / `TransientTransactionError`, and
 *   reports a write conflict as code 112.
 */
export function isRetryableStoreError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if (/SQLITE_BUSY|SQLITE_LOCKED|database is locked/.test(err.message)) return true;
  if (err instanceof mongoose.mongo.MongoError) {
    if (err.hasErrorLabel('RetryableWriteError') || err.hasErrorLabel('TransientTransactionError')) return true;
    if (err.code === 112) return true;
  }
  return false;
}

/** How `withStoreRetry` spaces and bounds its attempts. */
export interface StoreRetryOptions {
  /** Attempts in all, the first included. @default 8 */
  maxAttempts?: number;
  /** First back-off; doubled each attempt (with jitter), at most `maxDelayMs`. @default 25 */
  baseDelayMs?: number;
  /** @default 1000 */
  maxDelayMs?: number;
  /** Also retry these (e.g. a duplicate key from a racing upsert, which an idempotent write may repeat). */
  alsoRetry?: (err: unknown) => boolean;
}

/**
 * Runs an idempotent write, sending it again after a retryable failure (`isRetryableStoreError`) with
 * exponential back-off; once `maxAttempts` are spent, STORE_BUSY (the last error as its cause).
 * Any other error is thrown as it is at once.
 */
export async function withStoreRetry<T>(
  what: string,
  op: () => Promise<T>,
  options: StoreRetryOptions = {},
): Promise<T> {
  const maxAttempts = options.maxAttempts ?? 8;
  const baseDelayMs = options.baseDelayMs ?? 25;
  const maxDelayMs = options.maxDelayMs ?? 1_000;
  for (let attempt = 1; ; attempt++) {
    try {
      return await op();
    } catch (err) {
      if (!isRetryableStoreError(err) && !options.alsoRetry?.(err)) throw err;
      if (attempt >= maxAttempts) {
        throw new TributaryError(
          'STORE_BUSY',
          `The store refused ${what} ${attempt} times in a row (last: ${(err as Error).message.slice(0, 200)}); nothing of it is assumed written: try again.`,
          { cause: err, details: { attempts: attempt } },
        );
      }
      const delay = Math.min(maxDelayMs, baseDelayMs * 2 ** (attempt - 1));
      // Jitter: writers that collided once must not collide again in lockstep.
      await new Promise((r) => setTimeout(r, delay / 2 + Math.random() * (delay / 2)));
    }
  }
}
