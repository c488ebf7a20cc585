import { TributaryError } from '../errors';
import { logAdd, logErfc } from './logSpace';

// Module-level aliases: these run per coordinate or per series term, and a global lookup such as
// `Math.floor` costs ~0.5 us inside jest's vm sandbox (a plain property load elsewhere).
const { abs, ceil, expm1, log, log1p, max } = Math;
const numberIsNaN = Number.isNaN;

/**
 * Rényi DP of one step of the sampled Gaussian mechanism (SGM): each record (here: each client) is
 * included independently with probability q, and Gaussian noise of standard deviation z times the
 * L2 sensitivity is added to the sum (Mironov, Talwar & Zhang 2019, "Rényi Differential Privacy of
 * the Sampled Gaussian Mechanism", arXiv:1908.10530).
 *
 * The RDP at order alpha is log(A_alpha) / (alpha - 1) with
 * A_alpha = E_{x ~ N(0, z^2)} [((1 - q) + q * exp((2x - 1) / (2 z^2)))^alpha].
 * - Integer alpha (Sec. 3.3, eq. (3)): the binomial expansion
 *   A_alpha = sum_{k=0}^{alpha} C(alpha, k) (1 - q)^(alpha - k) q^k exp((k^2 - k) / (2 z^2)), exact.
 * - Fractional alpha (Sec. 3.3): A_alpha split at z0 = z^2 log(1/q - 1) + 1/2 into two integrals,
 *   each an infinite series of binomial terms times erfc tails. The binomial coefficients turn
 *   negative (and alternate) past k = alpha + 1; the series is summed with its signs, as TF Privacy's
 *   rdp_accountant does, and stops once the terms are decreasing and e^-30 below the total. Should a
 *   signed partial sum ever turn non-positive (rounding), the sum of absolute values is used instead:
 *   an upper bound on A_alpha (what Google's dp_accounting computes), so the accounting stays safe.
 * Everything is summed in log space. q = 0 costs nothing; q = 1 is the plain Gaussian mechanism,
 * alpha / (2 z^2) (Mironov 2017, Prop. 7).
 */
export function subsampledGaussianRdp(q: number, noiseMultiplier: number, order: number): number {
  if (!(q >= 0 && q <= 1)) throw new TributaryError('CONFIG_INVALID', `sampling rate must be in [0, 1], got ${q}`);
  if (!(noiseMultiplier > 0 && Number.isFinite(noiseMultiplier))) {
    throw new TributaryError(
      'CONFIG_INVALID',
      `noise multiplier must be a positive finite number, got ${noiseMultiplier}`,
    );
  }
  if (!(order > 1)) throw new TributaryError('CONFIG_INVALID', `RDP order must be > 1, got ${order}`);
  if (q === 0) return 0;
  if (order === Infinity) return Infinity;
  if (q === 1) return order / (2 * noiseMultiplier * noiseMultiplier);
  if (Number.isInteger(order)) return logAIntegerOrder(q, noiseMultiplier, order) / (order - 1);
  const logA = logAFractionalOrder(q, noiseMultiplier, order);
  if (Number.isFinite(logA)) return logA / (order - 1);
  // The series converges too slowly here (small orders, large q): Rényi divergences grow with the
  // order (van Erven & Harremoës 2014, Thm. 3), so the next integer order is a valid upper bound.
  return logAIntegerOrder(q, noiseMultiplier, ceil(order)) / (ceil(order) - 1);
}

/** log A_alpha for integer alpha: the finite binomial sum (MTZ 2019 Sec. 3.3). */
function logAIntegerOrder(q: number, z: number, alpha: number): number {
  const logQ = log(q);
  const log1mQ = log1p(-q);
  const twoZ2 = 2 * z * z;
  let logA = -Infinity;
  let logBinom = 0; // log C(alpha, 0)
  for (let k = 0; k <= alpha; k++) {
    if (k > 0) logBinom += log((alpha - k + 1) / k);
    const term = logBinom + k * logQ + (alpha - k) * log1mQ + (k * k - k) / twoZ2;
    logA = logAdd(logA, term);
  }
  return logA;
}

const MAX_FRACTIONAL_TERMS = 300;

/** log(exp(a) - exp(b)) for a >= b; NaN when a < b (the caller falls back to the absolute-value bound). */
function logSub(a: number, b: number): number {
  if (b === -Infinity) return a;
  if (a < b) return Number.NaN;
  if (a === b) return -Infinity;
  return a + log(-expm1(b - a));
}

/** log A_alpha for fractional alpha: the two erfc-weighted series (MTZ 2019 Sec. 3.3). */
function logAFractionalOrder(q: number, z: number, alpha: number): number {
  const logQ = log(q);
  const log1mQ = log1p(-q);
  const twoZ2 = 2 * z * z;
  const z0 = z * z * log(1 / q - 1) + 0.5;
  const sqrt2Z = Math.SQRT2 * z;
  // Signed sums (exact series) and absolute sums (upper bound, the fallback).
  let signed0 = -Infinity;
  let signed1 = -Infinity;
  let abs0 = -Infinity;
  let abs1 = -Infinity;
  let signedOk = true;
  let lastS0 = -Infinity;
  let lastS1 = -Infinity;
  let logAbsBinom = 0; // log |C(alpha, 0)|
  let binomPositive = true;
  for (let i = 0; i < MAX_FRACTIONAL_TERMS; i++) {
    if (i > 0) {
      const factor = (alpha - i + 1) / i;
      logAbsBinom += log(abs(factor));
      if (factor < 0) binomPositive = !binomPositive;
    }
    const j = alpha - i;
    const logT0 = logAbsBinom + i * logQ + j * log1mQ;
    const logT1 = logAbsBinom + j * logQ + i * log1mQ;
    const logE0 = log(0.5) + logErfc((i - z0) / sqrt2Z);
    const logE1 = log(0.5) + logErfc((z0 - j) / sqrt2Z);
    const logS0 = logT0 + (i * i - i) / twoZ2 + logE0;
    const logS1 = logT1 + (j * j - j) / twoZ2 + logE1;
    abs0 = logAdd(abs0, logS0);
    abs1 = logAdd(abs1, logS1);
    if (signedOk) {
      signed0 = binomPositive ? logAdd(signed0, logS0) : logSub(signed0, logS0);
      signed1 = binomPositive ? logAdd(signed1, logS1) : logSub(signed1, logS1);
      signedOk = !numberIsNaN(signed0) && !numberIsNaN(signed1);
    }
    const total = signedOk ? logAdd(signed0, signed1) : logAdd(abs0, abs1);
    if (logS0 < lastS0 && logS1 < lastS1 && max(logS0, logS1) < total - 30) return total;
    lastS0 = logS0;
    lastS1 = logS1;
  }
  // The series did not settle (its terms can decay only polynomially): no value from it.
  return Infinity;
}
