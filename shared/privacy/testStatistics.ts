/**
 * Small statistics for the privacy tests (not used by production code): sample moments, the standard
 * normal CDF, chi-square quantiles (Wilson-Hilferty) and two-sided bounds for a variance ratio.
 */
import { logErfc } from './logSpace';

export function mean(values: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < values.length; i++) s += values[i];
  return s / values.length;
}

/** The unbiased sample variance. */
export function sampleVariance(values: ArrayLike<number>): number {
  const m = mean(values);
  let s = 0;
  for (let i = 0; i < values.length; i++) s += (values[i] - m) ** 2;
  return s / (values.length - 1);
}

/** Phi(x), the standard normal CDF. */
export function normalCdf(x: number): number {
  return 0.5 * Math.exp(logErfc(-x / Math.SQRT2));
}

/** The chi-square quantile with `df` degrees of freedom at the standard-normal score `z` (Wilson & Hilferty 1931). */
export function chiSquareQuantile(df: number, z: number): number {
  const a = 2 / (9 * df);
  return df * (1 - a + z * Math.sqrt(a)) ** 3;
}

/**
 * Bounds [lo, hi] on sampleVariance / trueVariance for `n` normal samples, at `z` standard errors
 * each side ((n - 1) s^2 / sigma^2 is chi-square with n - 1 degrees of freedom).
 */
export function varianceRatioBounds(n: number, z: number): [number, number] {
  return [chiSquareQuantile(n - 1, -z) / (n - 1), chiSquareQuantile(n - 1, z) / (n - 1)];
}
