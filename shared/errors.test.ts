import { causeChain, hasCode, TributaryError } from './errors';

describe('typed error details and cause chains', () => {
  it('narrows to a code and its details shape', () => {
    const err: unknown = new TributaryError('RATE_LIMITED', 'slow down', { details: { retryAfterMs: 1500 } });
    expect(hasCode(err, 'JOB_NOT_FOUND')).toBe(false);
    if (!hasCode(err, 'RATE_LIMITED')) throw new Error('expected RATE_LIMITED');
    // Typed: details is { retryAfterMs } | undefined here, no cast.
    expect(err.details?.retryAfterMs).toBe(1500);
    expect(hasCode(new Error('x'), 'INTERNAL')).toBe(false);
  });

  it('walks the cause chain outermost first and stops on cycles', () => {
    const root = new Error('socket closed');
    const mid = new TributaryError('CHAIN_UNAVAILABLE', 'rpc down', { cause: root });
    const top = new TributaryError('INTERNAL', 'settle failed', { cause: mid });
    expect(causeChain(top)).toEqual([top, mid, root]);
    const a: { cause?: unknown } = {};
    const b = { cause: a };
    a.cause = b;
    expect(causeChain(a)).toHaveLength(2);
  });
});
