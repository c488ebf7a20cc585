import { TributaryError } from '../errors';
import type { RandomStream } from './randomSource';

// Module-level aliases: these run per coordinate or per series term, and a global lookup such as
// `Math.floor` costs ~0.5 us inside jest's vm sandbox (a plain property load elsewhere).
const { abs, floor, sqrt } = Math;
const { isSafeInteger } = Number;

/** A positive rational number: the variance of a discrete Gaussian. */
export interface Rational {
  numerator: bigint;
  denominator: bigint;
}

/**
 * Exact samplers of Canonne, Kamath & Steinke, "The Discrete Gaussian for Differential Privacy",
 * NeurIPS 2020 (arXiv:2004.00010), Sec. 5: every decision is a comparison of a uniform integer with
 * a rational, so the output distribution is exactly the discrete Gaussian, with no floating point.
 *
 * - Algorithm 1: Bernoulli(exp(-gamma)) for rational gamma >= 0.
 * - Algorithm 2: the discrete Laplace with scale t (s = 1).
 * - Algorithm 3: the discrete Gaussian N_Z(0, sigma^2), P(x) proportional to exp(-x^2 / (2 sigma^2)),
 *   by rejection from the discrete Laplace with t = floor(sigma) + 1.
 *
 * Integers stay in doubles while every intermediate value is a safe integer (< 2^53) and switch to
 * bigint otherwise, so large variances are exact too, only slower.
 */
export class DiscreteGaussianSampler {
  /** sigma^2 = p / q. */
  private readonly p: bigint;
  private readonly q: bigint;
  private readonly t: number;
  private readonly pNumber: number;
  private readonly qNumber: number;

  constructor(
    variance: number | Rational,
    private readonly random: RandomStream,
  ) {
    const { numerator, denominator } = typeof variance === 'number' ? integerRational(variance) : variance;
    if (!(numerator > 0n && denominator > 0n)) {
      throw new TributaryError(
        'CONFIG_INVALID',
        `the discrete Gaussian variance must be positive, got ${numerator}/${denominator}`,
      );
    }
    this.p = numerator;
    this.q = denominator;
    // floor(sigma) = floor(sqrt(floor(p / q))).
    const t = isqrt(numerator / denominator) + 1n;
    if (t > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new TributaryError('CONFIG_INVALID', 'the discrete Gaussian variance is too large (sigma >= 2^53)');
    }
    this.t = Number(t);
    this.pNumber = Number(numerator);
    this.qNumber = Number(denominator);
  }

  /** One sample of N_Z(0, sigma^2) (Algorithm 3). */
  next(): number {
    const t = this.t;
    for (;;) {
      const y = this.discreteLaplace();
      const a = abs(y);
      // Accept with probability exp(-(|y| - sigma^2 / t)^2 / (2 sigma^2)) = exp(-(|y| t q - p)^2 / (2 p q t^2)).
      const diff = a * t * this.qNumber - this.pNumber;
      const num = diff * diff;
      const den = 2 * this.pNumber * this.qNumber * t * t;
      if (isSafeInteger(a * t * this.qNumber) && isSafeInteger(num) && isSafeInteger(den)) {
        if (bernoulliExpNeg(num, den, this.random)) return y;
        continue;
      }
      const tb = BigInt(t);
      const d = BigInt(a) * tb * this.q - this.p;
      if (bernoulliExpNegBig(d * d, 2n * this.p * this.q * tb * tb, this.random)) return y;
    }
  }

  /** The discrete Laplace with scale t: P(x) proportional to exp(-|x| / t) (Algorithm 2 with s = 1). */
  private discreteLaplace(): number {
    const t = this.t;
    for (;;) {
      const u = this.random.below(t);
      if (!bernoulliExpNeg(u, t, this.random)) continue;
      let v = 0;
      while (bernoulliExpNeg(1, 1, this.random)) v++;
      const x = u + t * v;
      const negative = this.random.bit();
      if (negative && x === 0) continue;
      return negative ? -x : x;
    }
  }
}

function integerRational(variance: number): Rational {
  if (!(isSafeInteger(variance) && variance > 0)) {
    throw new TributaryError(
      'CONFIG_INVALID',
      `a discrete Gaussian variance given as a number must be a positive safe integer, got ${variance} (pass a Rational otherwise)`,
    );
  }
  return { numerator: BigInt(variance), denominator: 1n };
}

/** floor(sqrt(n)) for n >= 0, exact (Newton's method on bigints). */
export function isqrt(n: bigint): bigint {
  if (n < 0n) throw new TributaryError('INTERNAL', 'isqrt of a negative number');
  if (n < 2n) return n;
  let x = BigInt(floor(sqrt(Number(n))));
  // Correct the float estimate: at most a few steps either way.
  while (x * x > n) x--;
  while ((x + 1n) * (x + 1n) <= n) x++;
  return x;
}

/** Bernoulli(exp(-n / d)) for safe integers n >= 0, d >= 1 (Algorithm 1). */
export function bernoulliExpNeg(n: number, d: number, random: RandomStream): boolean {
  let whole = floor(n / d);
  let rest = n - whole * d;
  // n / d in floating point can round across an integer: fix the quotient exactly.
  if (rest < 0) {
    whole--;
    rest += d;
  } else if (rest >= d) {
    whole++;
    rest -= d;
  }
  for (let k = 0; k < whole; k++) if (!bernoulliExpNegAtMostOne(1, 1, random)) return false;
  return bernoulliExpNegAtMostOne(rest, d, random);
}

/** Bernoulli(exp(-gamma)) for gamma = n / d in [0, 1]: K counts successes of Bernoulli(gamma / K); return K odd. */
function bernoulliExpNegAtMostOne(n: number, d: number, random: RandomStream): boolean {
  let k = 1;
  for (;;) {
    const dk = d * k;
    if (!isSafeInteger(dk)) return bernoulliExpNegAtMostOneBig(BigInt(n), BigInt(d), k, random);
    // Bernoulli(n / (d k)): a uniform integer below d k is below n.
    if (random.below(dk) >= n) break;
    k++;
  }
  return k % 2 === 1;
}

/** Bernoulli(exp(-n / d)) on bigints (Algorithm 1). */
export function bernoulliExpNegBig(n: bigint, d: bigint, random: RandomStream): boolean {
  const whole = n / d;
  const rest = n % d;
  for (let k = 0n; k < whole; k++) if (!bernoulliExpNegAtMostOne(1, 1, random)) return false;
  return bernoulliExpNegAtMostOneBig(rest, d, 1, random);
}

function bernoulliExpNegAtMostOneBig(n: bigint, d: bigint, startK: number, random: RandomStream): boolean {
  let k = startK;
  for (;;) {
    if (random.belowBig(d * BigInt(k)) >= n) break;
    k++;
  }
  return k % 2 === 1;
}

/**
 * Adds independent N_Z(0, variance) noise to every value of a vector in Z_(2^32), in place (the
 * Uint32Array wraps modulo 2^32 on assignment, which is exactly the SecAgg+ group). Returns `values`.
 */
export function addDiscreteGaussianNoise(
  values: Uint32Array,
  variance: number | Rational,
  random: RandomStream,
): Uint32Array {
  const sampler = new DiscreteGaussianSampler(variance, random);
  for (let i = 0; i < values.length; i++) values[i] = values[i] + sampler.next();
  return values;
}
