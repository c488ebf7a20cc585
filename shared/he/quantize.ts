import { roundHalfUp } from '../aggregation/rounding';
import { TributaryError } from '../errors';

/**
 * Signed fixed-point quantisation for the `he` mode: a value x in [-c, c] becomes the integer
 * r = round(x / Δ) in [-h, h], with h = 2^(bits-1) - 1 and Δ = c / h, rounded half away from zero so
 * the map is odd-symmetric (a coordinate that is 0 everywhere sums to exactly 0). BGV and BFV slots hold
 * integers mod t, so a negative level is encoded as t - |r| and the sum of n clients' levels is read
 * back by the centred lift into (-t/2, t/2]: exact as long as 2·n·h < t (`maxClientsForHeadroom`).
 * This is the quantiser of the paillier mode (shared/paillier/quantize.ts) without its offset of h,
 * so the same error bound holds: each dequantised sum of n unclipped vectors is within
 * n·(Δ/2 + c·2^-23) of the exact sum (`heSumErrorBound`; the derivation is in that file's header).
 * Values outside [-c, c] are clipped to ±h and counted; NaN and ±Infinity are refused.
 */
export interface HeQuantizer {
  /** Bits per level, sign included: levels are in [-(2^(bits-1) - 1), 2^(bits-1) - 1]. */
  readonly bits: number;
  /** The clipping range c > 0. */
  readonly clipRange: number;
}

/** h = 2^(bits-1) - 1: the largest level magnitude. */
export function largestLevel(q: HeQuantizer): number {
  return 2 ** (q.bits - 1) - 1;
}

/** Δ = c / h. */
export function heQuantizationStep(q: HeQuantizer): number {
  return q.clipRange / largestLevel(q);
}

/** Worst-case |Σ x_i - Ŝ| per value for n clients whose values were all inside [-c, c]. */
export function heSumErrorBound(q: HeQuantizer, clientCount: number): number {
  return clientCount * (heQuantizationStep(q) / 2 + q.clipRange * 2 ** -23);
}

/** The most clients whose summed levels the centred lift mod t still reads exactly (2·n·h < t). */
export function maxClientsForHeadroom(q: HeQuantizer, plainModulus: bigint): number {
  return Number((plainModulus - 1n) / (2n * BigInt(largestLevel(q))));
}

/**
 * Writes the levels of `values` into `out` (which may be longer: the rest is left as it is, i.e. the
 * caller's zero padding) and returns how many values were clipped. CODEC_NON_FINITE on NaN/±Infinity.
 */
export function quantizeSigned(values: ArrayLike<number>, q: HeQuantizer, out: Int32Array): number {
  if (out.length < values.length) throw new TributaryError('INTERNAL', 'he: quantisation output too short');
  const c = q.clipRange;
  const h = largestLevel(q);
  const inverseStep = 1 / heQuantizationStep(q);
  let clipped = 0;
  for (let i = 0; i < values.length; i++) {
    const x = values[i];
    if (x >= -c && x <= c) {
      const r = Math.min(roundHalfUp(Math.abs(x) * inverseStep), h);
      out[i] = x < 0 ? -r : r;
    } else if (Number.isFinite(x)) {
      out[i] = x > 0 ? h : -h;
      clipped++;
    } else {
      throw new TributaryError(
        'CODEC_NON_FINITE',
        `he: value ${i} is ${String(x)}; cannot quantise a non-finite value`,
        {
          details: { index: i },
        },
      );
    }
  }
  return clipped;
}

/** Ŝ = S·Δ for the first `length` summed levels, as Float32. */
export function dequantizeSignedSum(levels: ArrayLike<number>, q: HeQuantizer, length: number): Float32Array {
  const step = heQuantizationStep(q);
  const out = new Float32Array(length);
  for (let i = 0; i < length; i++) out[i] = levels[i] * step;
  return out;
}
