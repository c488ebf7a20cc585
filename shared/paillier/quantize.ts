import { roundHalfUp } from '../aggregation/rounding';
import { TributaryError } from '../errors';

/**
 * Fixed-point quantisation of Float32 model updates for additively homomorphic aggregation
 * (BatchCrypt, Zhang et al., USENIX ATC 2020, section 4).
 *
 * A value x in [-c, c] becomes an unsigned integer q in [0, L], L = 2^bits - 2:
 *
 *     Δ = c / (2^(bits-1) - 1) = 2c / L          (the step)
 *     q = L/2 + roundHalfAwayFromZero(x / Δ)       (signed value by offset L/2)
 *
 * L is even so that 0 is exactly a level (q = L/2) and the map is odd-symmetric: a coordinate that
 * is 0 in every update sums to exactly 0, with no bias of Δ/2 per client. (With L = 2^bits - 1 the
 * zero would fall between two levels and every client would add Δ/2 to it.)
 *
 * Values outside [-c, c] are clipped to 0 or L and COUNTED: `quantize` returns how many it clipped,
 * so the caller can report them (Flower's SecAgg+ clips silently, see /work/shared/ANCHORS.md).
 * NaN and ±Infinity are refused (CODEC_NON_FINITE): they mean training diverged, not "large".
 *
 * The sum of n clients' quantised vectors is dequantised with the offset multiplied by n:
 *
 *     Ŝ = (S - n·L/2) · Δ,    S = q_1 + ... + q_n
 *
 * ## Error bound for a sum of n clients (none of them clipped)
 *
 * Per value, in exact arithmetic, |x - (q - L/2)·Δ| ≤ Δ/2 (rounding to the nearest level). In
 * floating point, x·(1/Δ) is computed in float64 with relative error ≤ 2·2^-53, i.e. an absolute
 * error ≤ |x|/Δ · 2^-52 in level units, which is ≤ |x|·2^-52 ≤ c·2^-52 back in value units; so
 * per value |x - x̂| ≤ Δ/2 + c·2^-52. Summing n values adds the errors (S is an exact integer
 * below 2^53, so the sum itself is exact): ≤ n·(Δ/2 + c·2^-52). Dequantising, S - n·L/2 is an exact
 * integer and the one multiplication by Δ errs by ≤ |Ŝ|·2^-53 ≤ n·c·2^-53 (|Ŝ| ≤ n·L/2·Δ = n·c).
 * Storing Ŝ as Float32 errs by ≤ |Ŝ|·2^-24 ≤ n·c·2^-24. Altogether
 *
 *     |Σ x_i - Ŝ| ≤ n·Δ/2 + n·c·(2^-52 + 2^-53 + 2^-24) < n·(Δ/2 + c·2^-23)  =: sumErrorBound
 *
 * The first term dominates and is reached when every x_i sits half a step between two levels;
 * for independent, uniformly placed rounding errors the typical error is Δ·sqrt(n/12) instead.
 * Example: bits = 16, c = 1, n = 100: Δ = 3.05e-5, bound = 1.53e-3 (typical 8.8e-5).
 * `quantize.test.ts` checks the bound holds and that the half-step case comes within 1 % of it.
 */
export interface QuantizerParams {
  /** Bits per quantised value, 2..32 (levels 0..2^bits - 2). */
  readonly bits: number;
  /** The clipping range c: values are quantised on [-c, c]. Finite, > 0. */
  readonly clipRange: number;
}

export interface QuantizeResult {
  /** One level in [0, 2^bits - 2] per input value. */
  values: Uint32Array;
  /** How many inputs were outside [-c, c] and were clipped to the nearest end. */
  clipped: number;
}

export const MIN_QUANTIZATION_BITS = 2;
export const MAX_QUANTIZATION_BITS = 32;

/** Throws CONFIG_INVALID unless `bits` and `clipRange` are usable. */
export function validateQuantizer(params: QuantizerParams): void {
  const { bits, clipRange } = params;
  if (!Number.isInteger(bits) || bits < MIN_QUANTIZATION_BITS || bits > MAX_QUANTIZATION_BITS) {
    throw new TributaryError(
      'CONFIG_INVALID',
      `paillier: bits must be an integer in [${MIN_QUANTIZATION_BITS}, ${MAX_QUANTIZATION_BITS}]; got ${String(bits)}`,
    );
  }
  if (typeof clipRange !== 'number' || !Number.isFinite(clipRange) || clipRange <= 0) {
    throw new TributaryError(
      'CONFIG_INVALID',
      `paillier: clipRange must be a finite number > 0; got ${String(clipRange)}`,
    );
  }
}

/** The largest level, L = 2^bits - 2 (even, so that 0 is the level L/2). */
export function maxLevel(params: QuantizerParams): number {
  return 2 ** params.bits - 2;
}

/** The quantisation step Δ = c / (2^(bits-1) - 1). */
export function quantizationStep(params: QuantizerParams): number {
  return params.clipRange / (2 ** (params.bits - 1) - 1);
}

/**
 * Worst-case |Σ x_i - dequantizeSum(Σ quantize(x_i))| for `clientCount` clients whose values were all
 * inside [-c, c]: n·(Δ/2 + c·2^-23) (derivation in this file's header).
 */
export function sumErrorBound(params: QuantizerParams, clientCount: number): number {
  return clientCount * (quantizationStep(params) / 2 + params.clipRange * 2 ** -23);
}

/**
 * Quantises `values` to levels in [0, 2^bits - 2]; values outside [-c, c] are clipped and counted.
 * Throws CODEC_NON_FINITE on NaN or ±Infinity.
 */
export function quantize(values: ArrayLike<number>, params: QuantizerParams): QuantizeResult {
  validateQuantizer(params);
  const c = params.clipRange;
  const half = maxLevel(params) / 2;
  const inverseStep = 1 / quantizationStep(params);
  const out = new Uint32Array(values.length);
  let clipped = 0;
  for (let i = 0; i < values.length; i++) {
    const x = values[i];
    if (x >= -c && x <= c) {
      // Round half away from zero on |x| keeps the map odd-symmetric around 0.
      const r = Math.min(roundHalfUp(Math.abs(x) * inverseStep), half);
      out[i] = x < 0 ? half - r : half + r;
    } else if (Number.isFinite(x)) {
      out[i] = x > 0 ? 2 * half : 0;
      clipped++;
    } else {
      throw new TributaryError(
        'CODEC_NON_FINITE',
        `paillier: value ${i} is ${String(x)}; cannot quantise a non-finite value`,
        {
          details: { index: i },
        },
      );
    }
  }
  return { values: out, clipped };
}

/**
 * Dequantises the slot-wise sum of `clientCount` clients' levels: (S - n·L/2)·Δ, as Float32.
 * Within `sumErrorBound(params, clientCount)` of the true sum when nothing was clipped.
 */
export function dequantizeSum(sums: ArrayLike<number>, params: QuantizerParams, clientCount: number): Float32Array {
  validateQuantizer(params);
  if (!Number.isInteger(clientCount) || clientCount < 1) {
    throw new TributaryError(
      'CONFIG_INVALID',
      `paillier: clientCount must be an integer >= 1; got ${String(clientCount)}`,
    );
  }
  const offset = clientCount * (maxLevel(params) / 2);
  const step = quantizationStep(params);
  const out = new Float32Array(sums.length);
  for (let i = 0; i < sums.length; i++) out[i] = (sums[i] - offset) * step;
  return out;
}

/** Dequantises one client's levels (the sum of a single client). */
export function dequantize(levels: ArrayLike<number>, params: QuantizerParams): Float32Array {
  return dequantizeSum(levels, params, 1);
}
