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
 * the network level (isNetworkFailure), at most `attempts` tries in all and none starting after
 * `until`; any other error, and the last network failure, is thrown as is.
 */
export async function withNetworkRetries<T>(request: () => Promise<T>, options: NetworkRetryOptions = {}): Promise<T> {
  const attempts = options.attempts ?? 3;
  const backoffMs = options.backoffMs ?? 200;
  for (let attempt = 1; ; attempt++) {
    try {
      return await request();
    } catch (err) {
      const wait = attempt * backoffMs;
      const late = options.until !== undefined && Date.now() + wait > options.until;
      if (!isNetworkFailure(err) || attempt >= attempts || late) throw err;
      options.onRetry?.(err, attempt);
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  }
}
