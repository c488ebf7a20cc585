import { TributaryError } from '../errors';

/** Options of adaptive clipping (Andrew et al. 2021); the defaults are the paper's. */
export interface AdaptiveClippingOptions {
  /** gamma: the fraction of updates that should end up unclipped (the norm quantile C tracks). @default 0.5 */
  targetQuantile: number;
  /** eta_C: the geometric learning rate of C. @default 0.2 */
  learningRate: number;
  /** C at round 1. @default 0.1 */
  initialNorm: number;
}

export const ADAPTIVE_CLIPPING_DEFAULTS: Readonly<AdaptiveClippingOptions> = Object.freeze({
  targetQuantile: 0.5,
  learningRate: 0.2,
  initialNorm: 0.1,
});

/**
 * Adaptive clipping of Andrew, Thakkar, McMahan & Ramaswamy, "Differentially Private Learning with
 * Adaptive Clipping", NeurIPS 2021, Algorithm 1: each round every client also reports the bit
 * b_i = [||Delta_i|| <= C]; the server learns the count sum(b_i) plus N(0, sigma_b^2) noise, divides
 * by the number of contributors m, and moves C geometrically towards the gamma-quantile of the norms:
 *
 *   C <- C * exp(-eta_C * (b_noised - gamma)).
 *
 * Privacy (Sec. 3): the update sum with noise z_Delta C and the centred bit count with noise sigma_b
 * form one Gaussian mechanism whose noise multiplier is z = (z_Delta^-2 + (2 sigma_b)^-2)^(-1/2); the
 * accountant is stepped with z, and the update noise uses z_Delta = (z^-2 - (2 sigma_b)^-2)^(-1/2)
 * (`updateNoiseMultiplier`). The same split pays for reporting the clipped fraction with a fixed C.
 */
export function nextClippingNorm(
  currentNorm: number,
  noisedUnclippedCount: number,
  contributors: number,
  options: Pick<AdaptiveClippingOptions, 'targetQuantile' | 'learningRate'>,
): number {
  if (!(currentNorm > 0 && Number.isFinite(currentNorm))) {
    throw new TributaryError(
      'CONFIG_INVALID',
      `the clipping norm must be a positive finite number, got ${currentNorm}`,
    );
  }
  if (!(Number.isInteger(contributors) && contributors >= 1)) {
    throw new TributaryError('CONFIG_INVALID', `contributors must be a positive integer, got ${contributors}`);
  }
  if (!Number.isFinite(noisedUnclippedCount)) {
    throw new TributaryError(
      'CONFIG_INVALID',
      `the noised unclipped count must be finite, got ${noisedUnclippedCount}`,
    );
  }
  const unclippedFraction = noisedUnclippedCount / contributors;
  return currentNorm * Math.exp(-options.learningRate * (unclippedFraction - options.targetQuantile));
}

/** The fraction of clipped updates a round reports: 1 - (noised unclipped count) / contributors, kept in [0, 1]. */
export function clippedFraction(noisedUnclippedCount: number, contributors: number): number {
  return Math.min(1, Math.max(0, 1 - noisedUnclippedCount / contributors));
}

/** z = (z_Delta^-2 + (2 sigma_b)^-2)^(-1/2): the noise multiplier the accountant is stepped with (Andrew et al. Sec. 3). */
export function combinedNoiseMultiplier(updateNoiseMultiplier: number, countNoiseStddev: number): number {
  return 1 / Math.sqrt(updateNoiseMultiplier ** -2 + (2 * countNoiseStddev) ** -2);
}

/**
 * z_Delta = (z^-2 - (2 sigma_b)^-2)^(-1/2): the update noise multiplier that leaves room for the
 * clipped-count noise sigma_b within a total noise multiplier z. Throws PRIVACY_BUDGET_UNREACHABLE
 * when sigma_b <= z / 2 (the count alone would spend the whole budget).
 */
export function updateNoiseMultiplier(totalNoiseMultiplier: number, countNoiseStddev: number): number {
  const rest = totalNoiseMultiplier ** -2 - (2 * countNoiseStddev) ** -2;
  if (!(rest > 0)) {
    throw new TributaryError(
      'PRIVACY_BUDGET_UNREACHABLE',
      `the clipped-count noise ${countNoiseStddev} spends the whole budget of noise multiplier ${totalNoiseMultiplier}; it must exceed ${totalNoiseMultiplier / 2}`,
    );
  }
  return 1 / Math.sqrt(rest);
}

/**
 * The default sigma_b: the larger of Andrew et al.'s m / 20 (m = expected clients per round) and
 * 5 z, so that the count never takes more than 1 % of the noise budget ((2 sigma_b)^-2 <= z^-2 / 100,
 * which raises the update noise by at most 0.5 %).
 */
export function defaultCountNoiseStddev(expectedClientsPerRound: number, totalNoiseMultiplier: number): number {
  return Math.max(expectedClientsPerRound / 20, 5 * totalNoiseMultiplier);
}
