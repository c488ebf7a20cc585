import { addDiscreteGaussianNoise, bernoulliExpNeg, DiscreteGaussianSampler, isqrt } from './discreteGaussian';
import { seededRandom } from './randomSource';
import { chiSquareQuantile, mean, sampleVariance, varianceRatioBounds } from './testStatistics';

/** The exact probabilities of N_Z(0, sigma^2) on [-k, k] (the rest is lumped into the two tails). */
function discreteGaussianPmf(variance: number, k: number): number[] {
  const weights: number[] = [];
  let total = 0;
  for (let x = -60 * Math.ceil(Math.sqrt(variance)) - 60; x <= 60 * Math.ceil(Math.sqrt(variance)) + 60; x++) {
    total += Math.exp((-x * x) / (2 * variance));
  }
  for (let x = -k; x <= k; x++) weights.push(Math.exp((-x * x) / (2 * variance)) / total);
  return weights;
}

/** Pearson's chi-square statistic of observed counts against expected probabilities, with the tails as one bin. */
function chiSquare(
  counts: Map<number, number>,
  pmf: number[],
  k: number,
  n: number,
): { statistic: number; df: number } {
  let statistic = 0;
  let inside = 0;
  let insideP = 0;
  for (let x = -k; x <= k; x++) {
    const observed = counts.get(x) ?? 0;
    const expected = pmf[x + k] * n;
    statistic += (observed - expected) ** 2 / expected;
    inside += observed;
    insideP += pmf[x + k];
  }
  const tailExpected = (1 - insideP) * n;
  if (tailExpected > 5) statistic += (n - inside - tailExpected) ** 2 / tailExpected;
  return { statistic, df: 2 * k + (tailExpected > 5 ? 1 : 0) };
}

describe('Bernoulli(exp(-gamma)) (CKS 2020 Algorithm 1)', () => {
  it.each([
    [0, 1],
    [1, 3],
    [1, 1],
    [7, 3],
    [5, 1],
  ])('P(true) = exp(-%p/%p) within 5 standard errors', (n, d) => {
    const random = seededRandom(`bernoulli-${n}-${d}`);
    const trials = 100_000;
    let hits = 0;
    for (let i = 0; i < trials; i++) if (bernoulliExpNeg(n, d, random)) hits++;
    const p = Math.exp(-n / d);
    expect(Math.abs(hits / trials - p)).toBeLessThanOrEqual(5 * Math.sqrt((p * (1 - p)) / trials) + 1e-12);
  });

  it('isqrt is exact around perfect squares, also beyond 2^53', () => {
    for (const k of [0n, 1n, 2n, 3n, 12345n, 2n ** 30n + 7n, 2n ** 40n + 3n]) {
      expect(isqrt(k * k)).toBe(k);
      if (k > 0n) expect(isqrt(k * k - 1n)).toBe(k - 1n);
      expect(isqrt(k * k + 2n * k)).toBe(k);
    }
  });
});

describe('discrete Gaussian sampler (CKS 2020 Algorithm 3)', () => {
  it.each([
    ['sigma^2 = 2', 2, 6],
    ['sigma^2 = 10/3 (rational)', { numerator: 10n, denominator: 3n }, 8],
    ['sigma^2 = 30', 30, 16],
  ])('%s: the counts fit the exact pmf (chi-square, p = 1e-6)', (_, variance, k) => {
    const sampler = new DiscreteGaussianSampler(variance, seededRandom(`dgauss-${_}`));
    const v = typeof variance === 'number' ? variance : Number(variance.numerator) / Number(variance.denominator);
    const n = 100_000;
    const counts = new Map<number, number>();
    for (let i = 0; i < n; i++) {
      const x = sampler.next();
      counts.set(x, (counts.get(x) ?? 0) + 1);
    }
    const { statistic, df } = chiSquare(counts, discreteGaussianPmf(v, k), k, n);
    expect(statistic).toBeLessThan(chiSquareQuantile(df, 4.75));
  });

  it('a wrong variance fails the same chi-square test (the test has power)', () => {
    const sampler = new DiscreteGaussianSampler(2, seededRandom('dgauss-power'));
    const n = 100_000;
    const counts = new Map<number, number>();
    for (let i = 0; i < n; i++) {
      const x = sampler.next();
      counts.set(x, (counts.get(x) ?? 0) + 1);
    }
    const { statistic, df } = chiSquare(counts, discreteGaussianPmf(2.2, 6), 6, n);
    expect(statistic).toBeGreaterThan(chiSquareQuantile(df, 4.75));
  });

  it('stays exact for variances whose arithmetic leaves doubles (bigint path): mean 0, variance sigma^2', () => {
    for (const variance of [1e9, 4e15]) {
      const sampler = new DiscreteGaussianSampler(variance, seededRandom(`dgauss-big-${variance}`));
      const n = 20_000;
      const x = Float64Array.from({ length: n }, () => sampler.next());
      expect(Math.abs(mean(x))).toBeLessThan(5 * Math.sqrt(variance / n));
      const [lo, hi] = varianceRatioBounds(n, 5);
      const ratio = sampleVariance(x) / variance;
      expect(ratio).toBeGreaterThan(lo);
      expect(ratio).toBeLessThan(hi);
    }
  });

  it('adds noise modulo 2^32 to a Uint32 vector: values wrap both ways', () => {
    const values = new Uint32Array(20_000).fill(0);
    addDiscreteGaussianNoise(values, 100, seededRandom('wrap'));
    const signed = Array.from(values, (u) => (u >= 2 ** 31 ? u - 2 ** 32 : u));
    expect(signed.some((s) => s < 0)).toBe(true);
    expect(signed.some((s) => s > 0)).toBe(true);
    expect(Math.max(...signed.map(Math.abs))).toBeLessThan(100);
    const [lo, hi] = varianceRatioBounds(signed.length, 5);
    expect(sampleVariance(signed) / 100).toBeGreaterThan(lo);
    expect(sampleVariance(signed) / 100).toBeLessThan(hi);
  });

  it('refuses a variance that is not a positive integer or rational', () => {
    expect(() => new DiscreteGaussianSampler(0, seededRandom('x'))).toThrow(/positive safe integer/);
    expect(() => new DiscreteGaussianSampler(2.5, seededRandom('x'))).toThrow(/positive safe integer/);
    expect(() => new DiscreteGaussianSampler({ numerator: -1n, denominator: 2n }, seededRandom('x'))).toThrow(
      /must be positive/,
    );
  });
});
