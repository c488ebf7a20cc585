import { cryptoRandom, seededRandom } from './randomSource';
import { chiSquareQuantile } from './testStatistics';

describe('RandomStream', () => {
  it('below(n) is uniform on [0, n) (chi-square), for n that does not divide 2^32', () => {
    const random = seededRandom('below-uniform');
    const n = 7;
    const trials = 70_000;
    const counts = new Array(n).fill(0);
    for (let i = 0; i < trials; i++) counts[random.below(n)]++;
    const expected = trials / n;
    const statistic = counts.reduce((s, c) => s + (c - expected) ** 2 / expected, 0);
    expect(statistic).toBeLessThan(chiSquareQuantile(n - 1, 4.75));
  });

  it('below(n) above 2^32 and belowBig stay in range and reach the top of it', () => {
    const random = seededRandom('below-large');
    const n = 2 ** 40 + 3;
    let top = 0;
    for (let i = 0; i < 2000; i++) {
      const x = random.below(n);
      expect(Number.isInteger(x) && x >= 0 && x < n).toBe(true);
      top = Math.max(top, x);
    }
    expect(top).toBeGreaterThan(n * 0.99);
    const big = 3n * 10n ** 30n + 1n;
    let bigTop = 0n;
    for (let i = 0; i < 2000; i++) {
      const x = random.belowBig(big);
      expect(x >= 0n && x < big).toBe(true);
      if (x > bigTop) bigTop = x;
    }
    expect(bigTop > (big * 99n) / 100n).toBe(true);
  });

  it('uniform() is in [0, 1) with 53 bits, and the seeded stream is reproducible while the CSPRNG is not', () => {
    const a = seededRandom('same-label');
    const b = seededRandom('same-label');
    const c = seededRandom('other-label');
    const xs = Array.from({ length: 5 }, () => a.uniform());
    expect(Array.from({ length: 5 }, () => b.uniform())).toEqual(xs);
    expect(Array.from({ length: 5 }, () => c.uniform())).not.toEqual(xs);
    for (const x of xs) expect(x >= 0 && x < 1).toBe(true);
    const r1 = cryptoRandom();
    const r2 = cryptoRandom();
    expect(Array.from({ length: 4 }, () => r1.uint32())).not.toEqual(Array.from({ length: 4 }, () => r2.uint32()));
  });
});
