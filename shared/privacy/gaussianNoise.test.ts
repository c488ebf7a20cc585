import { clipToNorm, l2Norm } from './clipping';
import { addGaussianNoise, GaussianSampler, noisedCount } from './gaussianNoise';
import { cryptoRandom, seededRandom } from './randomSource';
import { mean, normalCdf, sampleVariance, varianceRatioBounds } from './testStatistics';

describe('central Gaussian noise', () => {
  it('draws N(0, 1): mean, variance and the whole CDF (Kolmogorov-Smirnov) match, seeded', () => {
    const sampler = new GaussianSampler(seededRandom('gaussian-cdf'));
    const n = 100_000;
    const x = new Float64Array(n).map(() => sampler.next());
    expect(Math.abs(mean(x))).toBeLessThan(5 / Math.sqrt(n));
    const [lo, hi] = varianceRatioBounds(n, 5);
    expect(sampleVariance(x)).toBeGreaterThan(lo);
    expect(sampleVariance(x)).toBeLessThan(hi);
    const sorted = Float64Array.from(x).sort();
    let ks = 0;
    for (let i = 0; i < n; i++) {
      const f = normalCdf(sorted[i]);
      ks = Math.max(ks, Math.abs(f - i / n), Math.abs(f - (i + 1) / n));
    }
    // The KS critical value at p = 1e-6 is about sqrt(-ln(p / 2) / (2 n)) = 0.0081 for n = 1e5.
    expect(ks).toBeLessThan(0.0081);
  });

  it('adds N(0, stddev^2) to every coordinate in place: the noised sum differs, by the right amount', () => {
    const sum = new Float32Array(50_000).fill(2);
    const noised = addGaussianNoise(sum, 0.3, seededRandom('central-noise'));
    expect(noised).toBe(sum);
    const residual = Float64Array.from(noised, (v) => v - 2);
    const [lo, hi] = varianceRatioBounds(residual.length, 5);
    expect(sampleVariance(residual) / 0.09).toBeGreaterThan(lo);
    expect(sampleVariance(residual) / 0.09).toBeLessThan(hi);
    expect(residual.filter((r) => r === 0).length).toBeLessThan(10);
  });

  it('draws fresh noise from the CSPRNG and the same noise from the same seed', () => {
    const a = addGaussianNoise(new Float64Array(8), 1, cryptoRandom());
    const b = addGaussianNoise(new Float64Array(8), 1, cryptoRandom());
    expect(Array.from(a)).not.toEqual(Array.from(b));
    const c = addGaussianNoise(new Float64Array(8), 1, seededRandom('same'));
    const d = addGaussianNoise(new Float64Array(8), 1, seededRandom('same'));
    expect(Array.from(c)).toEqual(Array.from(d));
  });
});

describe('adversary: a model observer who knows every other client update (central noise)', () => {
  // The observer (the buyer, another participant) sees the noised sum and knows the other updates; it
  // tests whether the target sent u (||u|| = C) or nothing by projecting on u. With noise multiplier z
  // no test exceeds TPR = Phi(1/z - 1.645) at a 5 % false-positive rate (Dong, Roth & Su 2019, mu = 1/z).
  const z = 1.2;
  const c = 0.5;
  const random = seededRandom('central-mia');
  const others = Array.from(
    { length: 4 },
    () =>
      clipToNorm(
        Float32Array.from({ length: 32 }, () => random.uniform() - 0.5),
        c,
      ).update,
  );
  const raw = Float32Array.from({ length: 32 }, () => random.uniform() - 0.5);
  const target = clipToNorm(
    raw.map((x) => (x * 10) / l2Norm(raw)),
    c,
  ).update;

  function statistic(present: boolean, stddev: number): number {
    const sum = new Float64Array(32);
    for (const u of present ? [...others, target] : others) u.forEach((x, i) => (sum[i] += x));
    addGaussianNoise(sum, stddev, random);
    let dot = 0;
    for (let i = 0; i < 32; i++) {
      let known = 0;
      for (const u of others) known += u[i];
      dot += ((sum[i] - known) * target[i]) / l2Norm(target);
    }
    return dot;
  }

  function tprAt5Percent(stddev: number): number {
    const trials = 2000;
    const absent = Array.from({ length: trials }, () => statistic(false, stddev)).sort((a, b) => a - b);
    const threshold = absent[Math.floor(trials * 0.95)];
    return Array.from({ length: trials }, () => statistic(true, stddev)).filter((t) => t > threshold).length / trials;
  }

  it('cannot beat the trade-off curve of the accounted noise, and wins with too little noise', () => {
    const bound = normalCdf(1 / z - 1.6448536);
    const slack = 4 * Math.sqrt((bound * (1 - bound)) / 2000) + 0.02;
    expect(tprAt5Percent(z * c)).toBeLessThan(bound + slack);
    expect(tprAt5Percent((z * c) / 4)).toBeGreaterThan(bound + slack);
  });

  it('noises the clipped count with N(0, sigma_b^2)', () => {
    const counts = Float64Array.from({ length: 20_000 }, () => noisedCount(7, 2, random));
    expect(Math.abs(mean(counts) - 7)).toBeLessThan(5 * (2 / Math.sqrt(counts.length)));
    const [lo, hi] = varianceRatioBounds(counts.length, 5);
    expect(sampleVariance(counts) / 4).toBeGreaterThan(lo);
    expect(sampleVariance(counts) / 4).toBeLessThan(hi);
  });
});
