import { TributaryError } from '../errors';
import type { RandomStream } from './randomSource';

// Module-level aliases: these run per coordinate or per series term, and a global lookup such as
// `Math.floor` costs ~0.5 us inside jest's vm sandbox (a plain property load elsewhere).
const { log, sqrt } = Math;

/**
 * Standard normal samples by the Marsaglia polar method (Marsaglia & Bray 1964): draw (u, v)
 * uniform in the square (-1, 1)^2 until s = u^2 + v^2 lies in (0, 1), then u * m and v * m with
 * m = sqrt(-2 ln(s) / s) are two independent N(0, 1) samples. It needs no trigonometry and rejects
 * 1 - pi/4 (21 %) of the pairs. The uniforms carry 53 bits from the given stream (node:crypto's
 * CSPRNG in production).
 *
 * Caveat, documented in docs/privacy.md: floating-point samplers are not exactly Gaussian (Mironov
 * 2012 showed such artefacts can leak for Laplace noise); the central mode accepts this, as TF Privacy
 * and Opacus do. The distributed mode uses the exact discrete Gaussian sampler instead.
 */
export class GaussianSampler {
  private spare: number | undefined;

  constructor(private readonly random: RandomStream) {}

  /** One N(0, 1) sample. */
  next(): number {
    if (this.spare !== undefined) {
      const s = this.spare;
      this.spare = undefined;
      return s;
    }
    for (;;) {
      const u = 2 * this.random.uniform() - 1;
      const v = 2 * this.random.uniform() - 1;
      const s = u * u + v * v;
      if (s > 0 && s < 1) {
        const m = sqrt((-2 * log(s)) / s);
        this.spare = v * m;
        return u * m;
      }
    }
  }
}

/**
 * Central DP noise: adds N(0, stddev^2) to every coordinate of `values`, in place, and returns it.
 * For DP-FedAvg the coordinator calls it on the sum of clipped updates with
 * stddev = noiseMultiplier * clipNorm, before the strategy step.
 */
export function addGaussianNoise<T extends Float32Array | Float64Array>(
  values: T,
  stddev: number,
  random: RandomStream,
): T {
  if (!(stddev >= 0 && Number.isFinite(stddev))) {
    throw new TributaryError('CONFIG_INVALID', `the noise standard deviation must be finite and >= 0, got ${stddev}`);
  }
  const sampler = new GaussianSampler(random);
  for (let i = 0; i < values.length; i++) values[i] += stddev * sampler.next();
  return values;
}

/** A number plus N(0, stddev^2): the central mode's noised count of unclipped updates (stddev = sigma_b). */
export function noisedCount(count: number, stddev: number, random: RandomStream): number {
  if (!(stddev >= 0 && Number.isFinite(stddev))) {
    throw new TributaryError('CONFIG_INVALID', `the noise standard deviation must be finite and >= 0, got ${stddev}`);
  }
  return count + stddev * new GaussianSampler(random).next();
}
