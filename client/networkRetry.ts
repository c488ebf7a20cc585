import { hasCode, TributaryError } from '../shared/errors';

/**
 * Whether `err` is a network-level failure of `fetch`, where no HTTP response (or only part of its
 * body) arrived: undici's TypeError "fetch failed" (its `cause` says why: ECONNRESET, "other side
 * closed" when a keep-alive connection is reused just as the server closes it, ...) or "terminated"
 * (the body stream was cut). HTTP responses of any status are not failures here.
 */
export function isNetworkFailure(err: unknown): boolean {
  // By name, not instanceof: fetch's errors come from Node's own realm (not a vm's or jest's).
  const e = err as { name?: unknown; message?: unknown } | null;
  return e?.name === 'TypeError' && (e.message === 'fetch failed' || e.message === 'terminated');
}

/** `err` with its cause, for a warning: "TypeError: fetch failed (SocketError: other side closed)". */
export function describeFailure(err: unknown): string {
  const cause = (err as { cause?: unknown } | null)?.cause;
  return cause === undefined ? String(err) : `${String(err)} (${String(cause)})`;
}

/**
 * The refusal of a download the server rate-limited (HTTP 429): RATE_LIMITED with the wait its
 * Retry-After header asks for (delay-seconds or an HTTP date; 1 s when absent or unreadable), which
 * withNetworkRetries honours. Several providers behind one address share the coordinator's per-IP
 * limit, so a burst of downloads at a round's start can meet it.
 */
export function rateLimitedError(what: string, retryAfter: string | null, now = Date.now()): TributaryError {
  let waitMs = 1000;
  if (retryAfter !== null && /^\d+$/.test(retryAfter.trim())) waitMs = Number(retryAfter.trim()) * 1000;
  else if (retryAfter !== null && Number.isFinite(Date.parse(retryAfter)))
    waitMs = Math.max(0, Date.parse(retryAfter) - now);
  return new TributaryError(
    'RATE_LIMITED',
    `${what} was refused with HTTP 429; the server asks to retry in ${waitMs} ms.`,
    {
      details: { retryAfterMs: waitMs },
    },
  );
}

/** The wait a RATE_LIMITED refusal from rateLimitedError asks for, or null for any other error. */
function retryAfterMsOf(err: unknown): number | null {
  if (!hasCode(err, 'RATE_LIMITED')) return null;
  const ms = err.details?.retryAfterMs;
  return typeof ms === 'number' && Number.isFinite(ms) && ms >= 0 ? ms : null;
}

export interface NetworkRetryOptions {
  /** Tries in all, the first included. @default 3 */
  attempts?: number;
  /** Wait before retry k (1-based) is k × backoffMs. @default 200 */
  backoffMs?: number;
  /** No retry starts after this time (epoch ms), e.g. the round's deadline. */
  until?: number;
  /** Told of each failure that is retried. */
  onRetry?: (err: unknown, attempt: number) => void;
}

/**
 * Runs `request` (an idempotent download: fetch and read the body) and retries it when it fails at
 * the network level (isNetworkFailure, after attempt × backoffMs) or is rate-limited
 * (rateLimitedError, after the wait the server asked for, at least that backoff), at most `attempts`
 * tries in all and none starting after `until`; any other error, and the last failure, is thrown as is.
 */
export async function withNetworkRetries<T>(request: () => Promise<T>, options: NetworkRetryOptions = {}): Promise<T> {
  const attempts = options.attempts ?? 3;
  const backoffMs = options.backoffMs ?? 200;
  for (let attempt = 1; ; attempt++) {
    try {
      return await request();
    } catch (err) {
      const retryAfterMs = retryAfterMsOf(err);
      if (!isNetworkFailure(err) && retryAfterMs === null) throw err;
      const wait = Math.max(attempt * backoffMs, retryAfterMs ?? 0);
      const late = options.until !== undefined && Date.now() + wait > options.until;
      if (attempt >= attempts || late) throw err;
      options.onRetry?.(err, attempt);
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  }
}
