import type { TributaryError } from '../errors';
import {
  clippedFraction,
  combinedNoiseMultiplier,
  defaultCountNoiseStddev,
  nextClippingNorm,
  updateNoiseMultiplier,
} from './adaptiveClipping';
import { GaussianSampler } from './gaussianNoise';
import { seededRandom } from './randomSource';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return (err as TributaryError).code;
  }
  return undefined;
}

describe('adaptive clipping (Andrew et al. 2021)', () => {
  it('moves C geometrically: down when more than the target quantile is unclipped, up otherwise', () => {
    const options = { targetQuantile: 0.5, learningRate: 0.2 };
    // 8 of 10 unclipped: C * exp(-0.2 * (0.8 - 0.5)).
    expect(nextClippingNorm(1, 8, 10, options)).toBeCloseTo(Math.exp(-0.06), 12);
    expect(nextClippingNorm(1, 2, 10, options)).toBeCloseTo(Math.exp(0.06), 12);
    expect(nextClippingNorm(2, 5, 10, options)).toBeCloseTo(2, 12);
    expect(clippedFraction(8, 10)).toBeCloseTo(0.2, 12);
    expect(clippedFraction(-3, 10)).toBe(1); // noise can push the count outside [0, n]: reported within [0, 1]
  });

  it('tracks the target quantile of the update norms through the noised count', () => {
    // 50 clients per round whose update norms are log-normal (median 1.5); the count of unclipped
    // updates gets N(0, sigma_b^2) noise with Andrew et al.'s sigma_b = m / 20.
    const random = seededRandom('adaptive-clipping');
    const gaussian = new GaussianSampler(random);
    const m = 50;
    const sigmaB = m / 20;
    for (const targetQuantile of [0.3, 0.5, 0.8]) {
      let c = 0.1;
      const recent: number[] = [];
      for (let round = 0; round < 400; round++) {
        let unclipped = 0;
        for (let i = 0; i < m; i++) if (1.5 * Math.exp(0.5 * gaussian.next()) <= c) unclipped++;
        c = nextClippingNorm(c, unclipped + sigmaB * gaussian.next(), m, { targetQuantile, learningRate: 0.2 });
        if (round >= 300) recent.push(c);
      }
      // The true quantile of 1.5 * exp(0.5 N(0, 1)) at p is 1.5 * exp(0.5 * Phi^-1(p)).
      const zOf = { 0.3: -0.5244005, 0.5: 0, 0.8: 0.8416212 } as const;
      const quantile = 1.5 * Math.exp(0.5 * zOf[targetQuantile as 0.3 | 0.5 | 0.8]);
      const averaged = recent.reduce((a, b) => a + b, 0) / recent.length;
      expect(Math.abs(averaged / quantile - 1)).toBeLessThan(0.1);
    }
  });

  it('splits the noise multiplier between the update and the clipped count (Sec. 3) and back', () => {
    // z_Delta = (z^-2 - (2 sigma_b)^-2)^(-1/2): with z = 1 and sigma_b = 5, (1 - 1/100)^(-1/2).
    expect(updateNoiseMultiplier(1, 5)).toBeCloseTo(1 / Math.sqrt(0.99), 12);
    for (const [z, sigmaB] of [
      [0.7, 2],
      [1.3, 10],
      [4, 2.5],
    ]) {
      const zDelta = updateNoiseMultiplier(z, sigmaB);
      expect(zDelta).toBeGreaterThan(z); // the update needs more noise than the total
      expect(combinedNoiseMultiplier(zDelta, sigmaB)).toBeCloseTo(z, 12);
    }
    expect(defaultCountNoiseStddev(100, 1)).toBe(5);
    expect(defaultCountNoiseStddev(1000, 1)).toBe(50);
    expect(defaultCountNoiseStddev(20, 2)).toBe(10);
  });

  it('refuses a count noise that would spend the whole budget', () => {
    expect(codeOf(() => updateNoiseMultiplier(2, 1))).toBe('PRIVACY_BUDGET_UNREACHABLE');
    expect(codeOf(() => updateNoiseMultiplier(2, 0.9))).toBe('PRIVACY_BUDGET_UNREACHABLE');
    expect(codeOf(() => nextClippingNorm(0, 1, 2, { targetQuantile: 0.5, learningRate: 0.2 }))).toBe('CONFIG_INVALID');
  });
});
