import { TributaryError } from '../errors';

/**
 * Fixed-point quantisation of Float32 vectors into Z_(2^32), for secure aggregation.
 *
 * A value x in [-c, c] (c = `clippingRange`) maps to q = round((x + c) * R / (2c)), an integer in
 * [0, R] (R = `quantizationRange`). The sum of n quantised vectors is an integer in [0, nR], so it is
 * exact modulo 2^32 as long as n * R < 2^32; `maxClientsFor` gives that n. Dequantising the sum
 * subtracts the n offsets: sum_x = sum_q * 2c / R - n * c.
 *
 * Error bound (values inside the range): round-to-nearest moves each value by at most half a step,
 * step = 2c / R, so each coordinate of the dequantised sum of n clients is within
 * `sumErrorBound(n) = n * c / R` of the exact float sum (plus float64 rounding, ~1e-16 relative).
 * Values outside [-c, c] are clipped to the range, **counted** and reported by `quantize`; the
 * caller decides what to do (`outOfRange: 'reject'` throws instead). Flower's SecAgg+ defaults are
 * c = 8, R = 2^22, modulus 2^32 (up to 1023 clients); Flower clips silently, we do not.
 */
export interface QuantizationParameters {
  /** Values are clipped to [-clippingRange, clippingRange]. @default 8 */
  clippingRange: number;
  /** Number of steps across the clipping range; a power of two. @default 2 ** 22 */
  quantizationRange: number;
}

export const DEFAULT_QUANTIZATION: Readonly<QuantizationParameters> = Object.freeze({
  clippingRange: 8,
  quantizationRange: 2 ** 22,
});

/** The modulus of the masked arithmetic: every vector lives in Z_(2^32) as a Uint32Array. */
export const MODULUS = 2 ** 32;

/** Throws CONFIG_INVALID unless the parameters are usable; returns them frozen. */
export function validateQuantization(p: QuantizationParameters): Readonly<QuantizationParameters> {
  if (!(Number.isFinite(p.clippingRange) && p.clippingRange > 0)) {
    throw new TributaryError(
      'CONFIG_INVALID',
      `clippingRange must be a positive finite number, got ${p.clippingRange}`,
    );
  }
  const r = p.quantizationRange;
  if (!(Number.isInteger(r) && r >= 2 && r < MODULUS && (r & (r - 1)) === 0 && r <= 2 ** 31)) {
    throw new TributaryError('CONFIG_INVALID', `quantizationRange must be a power of 2 in [2, 2^31], got ${r}`);
  }
  return Object.freeze({ clippingRange: p.clippingRange, quantizationRange: r });
}

/** The most clients whose quantised vectors can be summed mod 2^32 without wrapping. */
export function maxClientsFor(p: QuantizationParameters): number {
  return Math.floor((MODULUS - 1) / p.quantizationRange);
}

/** Per-coordinate bound on |dequantizeSum(sum of n) - float sum| for values inside the range. */
export function sumErrorBound(n: number, p: QuantizationParameters): number {
  return (n * p.clippingRange) / p.quantizationRange;
}

export interface QuantizeOptions {
  /** 'clip' clips and counts out-of-range values; 'reject' throws VALIDATION_FAILED. @default 'clip' */
  outOfRange?: 'clip' | 'reject';
}

export interface QuantizeResult {
  values: Uint32Array;
  /** How many values were outside [-c, c] and were clipped. */
  clipped: number;
  /** The largest |x| seen, so the caller can tell how far outside the range it went. */
  maxAbs: number;
}

/** Quantises a float vector into [0, R] (a Uint32Array); NaN/Infinity always throw CODEC_NON_FINITE. */
export function quantize(
  input: ArrayLike<number>,
  params: QuantizationParameters = DEFAULT_QUANTIZATION,
  options: QuantizeOptions = {},
): QuantizeResult {
  const { clippingRange: c, quantizationRange: r } = validateQuantization(params);
  const scale = r / (2 * c);
  const out = new Uint32Array(input.length);
  let clipped = 0;
  let maxAbs = 0;
  for (let i = 0; i < input.length; i++) {
    let x = input[i];
    if (!Number.isFinite(x)) {
      throw new TributaryError('CODEC_NON_FINITE', `value ${i} is ${x}; only finite values can be quantised`);
    }
    const a = Math.abs(x);
    if (a > maxAbs) maxAbs = a;
    if (a > c) {
      if (options.outOfRange === 'reject') {
        throw new TributaryError('VALIDATION_FAILED', `value ${i} is ${x}, outside the clipping range [-${c}, ${c}]`, {
          details: { index: i, value: x, clippingRange: c },
        });
      }
      clipped++;
      x = x > 0 ? c : -c;
    }
    // (x + c) * scale is in [0, r]; Math.round keeps it there.
    out[i] = Math.round((x + c) * scale);
  }
  return { values: out, clipped, maxAbs };
}

/**
 * Turns the mod-2^32 sum of `n` clients' quantised vectors back into the float sum (Float64Array:
 * the error bound is the quantisation step, not float32 rounding; convert if you need Float32).
 */
export function dequantizeSum(
  sum: Uint32Array,
  n: number,
  params: QuantizationParameters = DEFAULT_QUANTIZATION,
): Float64Array {
  const { clippingRange: c, quantizationRange: r } = validateQuantization(params);
  if (!(Number.isInteger(n) && n >= 1 && n <= maxClientsFor(params))) {
    throw new TributaryError(
      'CONFIG_INVALID',
      `n must be an integer in [1, ${maxClientsFor(params)}] for quantizationRange ${r}, got ${n}`,
    );
  }
  const step = (2 * c) / r;
  const offset = n * c;
  const out = new Float64Array(sum.length);
  for (let i = 0; i < sum.length; i++) out[i] = sum[i] * step - offset;
  return out;
}

/** Weighting (shared by both private modes): see shared/aggregation/weighting.ts. */
export { weightUpdate } from '../aggregation/weighting';

/**
 * The weighted mean from a dequantised sum of `weightUpdate` vectors (last element = sum of ratios).
 * If every coordinate of the sum is within E = sumErrorBound(n) and the true ratio sum is D > E, each
 * coordinate of the result is within `weightedMeanErrorBound` = (E + |mean| * E) / (D - E).
 */
export function weightedMeanFromSum(sum: ArrayLike<number>): Float64Array {
  if (sum.length < 1) throw new TributaryError('VALIDATION_FAILED', 'the weighted sum has no weight element');
  const total = sum[sum.length - 1];
  if (!(total > 0)) {
    throw new TributaryError('VALIDATION_FAILED', `the sum of weights is ${total}; expected a positive number`);
  }
  const out = new Float64Array(sum.length - 1);
  for (let i = 0; i < out.length; i++) out[i] = sum[i] / total;
  return out;
}

/** Per-coordinate bound for `weightedMeanFromSum`; see there. */
export function weightedMeanErrorBound(
  meanAbs: number,
  weightSum: number,
  n: number,
  p: QuantizationParameters,
): number {
  const e = sumErrorBound(n, p);
  if (weightSum <= e) return Infinity;
  return (e + meanAbs * e) / (weightSum - e);
}
