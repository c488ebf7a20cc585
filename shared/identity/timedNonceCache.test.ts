import { TimedNonceCache } from './timedNonceCache';

describe('TimedNonceCache', () => {
  it('refuses a nonce seen within the window and forgets it only after 2 x window', () => {
    let now = 1_000_000;
    const cache = new TimedNonceCache(100, 10, () => now);
    expect(cache.checkAndRemember('k', 'n1')).toBe(true);
    expect(cache.checkAndRemember('k', 'n1')).toBe(false);
    expect(cache.checkAndRemember('other', 'n1')).toBe(true);
    now += 199;
    expect(cache.checkAndRemember('k', 'n1')).toBe(false);
    now += 1;
    expect(cache.checkAndRemember('k', 'n1')).toBe(true);
  });

  it('holds at most maxEntries unexpired nonces and refuses new ones with RATE_LIMITED instead of evicting', () => {
    let now = 0;
    const cache = new TimedNonceCache(1_000, 3, () => now);
    for (const n of ['a', 'b', 'c']) expect(cache.checkAndRemember('k', n)).toBe(true);
    expect(() => cache.checkAndRemember('k', 'd')).toThrow(expect.objectContaining({ code: 'RATE_LIMITED' }));
    // The old ones are still refused (nothing was evicted early).
    expect(cache.checkAndRemember('k', 'a')).toBe(false);
    now += 2_000;
    expect(cache.checkAndRemember('k', 'd')).toBe(true);
    expect(cache.size).toBe(1);
  });
});
