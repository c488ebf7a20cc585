import { logAdd, logErfc } from './logSpace';

describe('log-space helpers', () => {
  // Reference values of erfc: CPython's math.erfc (correctly rounded libm), which match Abramowitz &
  // Stegun Table 7.1 to the digits printed there.
  it.each([
    [-1, 1.8427007929497148],
    [0, 1],
    [0.5, 0.4795001221869535],
    [1, 0.15729920705028513],
    [1.9, 0.0072095707647425325],
    [2, 0.004677734981047266],
    [2.1, 0.002979466656332984],
    [2.5, 0.0004069520174449589],
    [2.9, 4.109787809945886e-5],
    [3, 2.209049699858544e-5],
    [3.5, 7.430983723414128e-7],
    [4, 1.541725790028002e-8],
    [5, 1.5374597944280351e-12],
    [6, 2.1519736712498913e-17],
  ])('erfc(%p) = %p to 1e-12 relative', (x, expected) => {
    expect(Math.abs(Math.exp(logErfc(x)) / expected - 1)).toBeLessThan(1e-12);
  });

  it('stays finite and accurate far in the tail where erfc underflows', () => {
    // Asymptotic series (A&S 7.1.23): log erfc(x) = -x^2 - log(x sqrt(pi)) + log(1 - 1/(2x^2) + 3/(4x^4) - ...).
    for (const x of [30, 100, 1e4]) {
      const asymptotic = -x * x - Math.log(x * Math.sqrt(Math.PI)) + Math.log1p(-1 / (2 * x * x) + 3 / (4 * x ** 4));
      expect(Number.isFinite(logErfc(x))).toBe(true);
      expect(Math.abs(logErfc(x) - asymptotic)).toBeLessThan(1e-9 * Math.abs(asymptotic));
    }
    expect(logErfc(Infinity)).toBe(-Infinity);
    expect(logErfc(-40)).toBeCloseTo(Math.log(2), 15);
  });

  it('is continuous where the series hands over to the continued fraction (x = 2)', () => {
    const below = logErfc(2 - 1e-9);
    const above = logErfc(2);
    expect(Math.abs(below - above)).toBeLessThan(1e-7);
  });

  it('logAdd adds in log space without overflow', () => {
    expect(logAdd(Math.log(2), Math.log(3))).toBeCloseTo(Math.log(5), 14);
    expect(logAdd(-Infinity, 7)).toBe(7);
    expect(logAdd(1000, 1000)).toBeCloseTo(1000 + Math.log(2), 10);
  });
});
