import { addGaussianNoise, GaussianSampler } from './gaussianNoise';
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
