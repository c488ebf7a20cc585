import { TributaryError } from '../../shared/errors';
import { DEFAULT_PAGE, MAX_FULL_PAGE } from '../../shared/schemas/restApi';

/*
 * Cursor paging for every list. A cursor is opaque to callers (base64url JSON): for lists ordered by
 * (time, id) it names the last item seen, so pages stay stable while items are added; for short
 * per-job lists (rounds, participants) it is an offset. A malformed cursor is VALIDATION_FAILED.
 */

/** Page size and view from the query: default DEFAULT_PAGE; full views at most MAX_FULL_PAGE. */
export function pageOf(query: { limit?: number; view?: 'summary' | 'full' }, defaultView: 'summary' | 'full') {
  const view = query.view ?? defaultView;
  const limit = query.limit ?? DEFAULT_PAGE;
  if (view === 'full' && limit > MAX_FULL_PAGE) {
    throw new TributaryError(
      'VALIDATION_FAILED',
      `Invalid input: limit: at most ${MAX_FULL_PAGE} with view=full (full records can be large); got ${limit}. Use view=summary for up to 100.`,
    );
  }
  return { view, limit };
}

/** An opaque cursor naming the last item of a page ordered by (time, id). */
export function timeCursor(at: Date, id: string): string {
  return Buffer.from(JSON.stringify([at.getTime(), id])).toString('base64url');
}

/** The (time, id) a timeCursor names. */
export function readTimeCursor(cursor: string): { at: Date; id: string } {
  try {
    const [t, id] = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as unknown[];
    // A time beyond any Date (|t| > 8.64e15 ms) is an Invalid Date, which a MongoDB query cannot carry.
    const at = typeof t === 'number' ? new Date(t) : undefined;
    if (at && Number.isFinite(at.getTime()) && typeof id === 'string' && id.length <= 128) return { at, id };
  } catch {
    // fall through
  }
  throw new TributaryError('VALIDATION_FAILED', 'Invalid input: cursor: not a cursor this list returned.');
}

/** One page of an in-memory list, by offset cursor. */
export function offsetPage<T>(
  items: readonly T[],
  cursor: string | undefined,
  limit: number,
): { page: T[]; next: string | null } {
  let start = 0;
  if (cursor !== undefined) {
    start = Number(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (!Number.isInteger(start) || start < 0) {
      throw new TributaryError('VALIDATION_FAILED', 'Invalid input: cursor: not a cursor this list returned.');
    }
  }
  const page = items.slice(start, start + limit);
  const end = start + page.length;
  return { page, next: end < items.length ? Buffer.from(String(end)).toString('base64url') : null };
}
