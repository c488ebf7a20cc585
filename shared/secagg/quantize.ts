import { weightRatio } from '../aggregation/weighting';
import { roundHalfUp } from '../aggregation/rounding';
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
export { clipAndWeightUpdate, weightUpdate } from '../aggregation/weighting';

/**
 * Quantises a weighted update (`clipAndWeightUpdate`: L values ratio·Δ, then the weight ratio) for
 * SecAgg+. The L values are quantised as `quantize` does, on [-c, c]. The weight ratio gets its own
 * range, [0, 1] (q = round(ratio · R)), not the deltas' [-c, c] (Flower's SecAgg+ mod appends the ratio
 * to the values and quantises it with them): so an honest client cannot put a negative ratio in its
 * input, the weight keeps 2c times more resolution (a one-example client at maxExampleWeight 100,000 is
 * 42 steps, not 2.6), and the summed weight of n honest clients is an integer in [0, nR] that
 * dequantises exactly to within n / (2R) (`weightSumErrorBound`). A ratio outside [0, 1] or non-finite
 * throws (VALIDATION_FAILED / CODEC_NON_FINITE): it is a bug, not a value to clip.
 *
 * What this does not do: stop a client that runs modified code. Every value of a masked vector is a
 * residue mod 2^32, and one that adds 2^32 - k after masking subtracts k from the sum, which nothing
 * can see before unmasking. The coordinator therefore checks the revealed sum instead: a summed
 * weight or a coordinate outside what honest clients can produce fails that sum
 * (coordinator/aggregation/honestSumBounds.ts).
 */
export function quantizeWeightedUpdate(
  weighted: ArrayLike<number>,
  params: QuantizationParameters = DEFAULT_QUANTIZATION,
  options: QuantizeOptions = {},
): QuantizeResult {
  const p = validateQuantization(params);
  const n = weighted.length;
  if (n < 1) throw new TributaryError('VALIDATION_FAILED', 'the weighted update has no weight element');
  const ratio = weighted[n - 1];
  if (!Number.isFinite(ratio)) {
    throw new TributaryError('CODEC_NON_FINITE', `the weight ratio is ${ratio}; only finite values can be quantised`);
  }
  if (!(ratio >= 0 && ratio <= 1)) {
    throw new TributaryError('VALIDATION_FAILED', `the weight ratio is ${ratio}; expected a value in [0, 1]`, {
      details: { ratio },
    });
  }
  // A view, not a copy, when the input is a typed array (vectors reach millions of values).
  const values =
    weighted instanceof Float32Array || weighted instanceof Float64Array
      ? weighted.subarray(0, n - 1)
      : (Array.prototype.slice.call(weighted, 0, n - 1) as number[]);
  const q = quantize(values, p, options);
  const out = new Uint32Array(n);
  out.set(q.values);
  out[n - 1] = Math.round(ratio * p.quantizationRange);
  return { values: out, clipped: q.clipped, maxAbs: q.maxAbs };
}

/**
 * `quantizeWeightedUpdate(clipAndWeightUpdate(delta, examples, maxWeight, params.clippingRange).values,
 * params)` in one pass and one allocation (what a secagg client masks): bit for bit the same values
 * (each weighted value is rounded to float32 as clipAndWeightUpdate stores it), with `clipped` and
 * `maxAbs` of the delta as clipAndWeightUpdate reports them. Non-finite values throw CODEC_NON_FINITE.
 */
export function quantizeClippedWeightedUpdate(
  delta: ArrayLike<number>,
  examples: number,
  maxWeight: number,
  params: QuantizationParameters = DEFAULT_QUANTIZATION,
): QuantizeResult {
  const { clippingRange: c, quantizationRange: r } = validateQuantization(params);
  const ratio = Math.fround(weightRatio(examples, maxWeight));
  const scale = r / (2 * c);
  const n = delta.length;
  const out = new Uint32Array(n + 1);
  let clipped = 0;
  let maxAbs = 0;
  for (let i = 0; i < n; i++) {
    const x = delta[i];
    if (!Number.isFinite(x)) {
      throw new TributaryError('CODEC_NON_FINITE', `delta value ${i} is ${x}; only finite updates can be weighted`);
    }
    const a = Math.abs(x);
    if (a > maxAbs) maxAbs = a;
    let v = x;
    if (a > c) {
      clipped++;
      v = x > 0 ? c : -c;
    }
    // As stored in clipAndWeightUpdate's Float32Array, then clipped as quantize would (float32 rounding can step past c).
    let w = Math.fround(v * ratio);
    if (w > c) w = c;
    else if (w < -c) w = -c;
    out[i] = roundHalfUp((w + c) * scale);
  }
  out[n] = Math.round(ratio * r);
  return { values: out, clipped, maxAbs };
}

/**
 * Dequantises the mod-2^32 sum of `n` clients' `quantizeWeightedUpdate` vectors: the values as
 * `dequantizeSum` does (minus n offsets), the last element, the summed weight ratio, as sum / R.
 */
export function dequantizeWeightedSum(
  sum: Uint32Array,
  n: number,
  params: QuantizationParameters = DEFAULT_QUANTIZATION,
): Float64Array {
  const out = dequantizeSum(sum, n, params);
  if (out.length < 1) throw new TributaryError('VALIDATION_FAILED', 'the weighted sum has no weight element');
  out[out.length - 1] = sum[sum.length - 1] / params.quantizationRange;
  return out;
}

/** Bound on |dequantised summed weight - Σ ratio_i| for n honest clients: half a step of 1/R each. */
export function weightSumErrorBound(n: number, p: QuantizationParameters): number {
  return n / (2 * p.quantizationRange);
}

/**
 * The weighted mean from a dequantised sum of weighted vectors (last element = sum of ratios).
 * If every value of the sum is within E = sumErrorBound(n), the true ratio sum is D and the weight
 * is within E_w = weightSumErrorBound(n) with D > E_w, each coordinate of the result is within
 * `weightedMeanErrorBound` = (E + |mean| * E_w) / (D - E_w).
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

/** Per-coordinate bound for `weightedMeanFromSum` of `quantizeWeightedUpdate` vectors; see there. */
export function weightedMeanErrorBound(
  meanAbs: number,
  weightSum: number,
  n: number,
  p: QuantizationParameters,
): number {
  const e = sumErrorBound(n, p);
  const ew = weightSumErrorBound(n, p);
  if (weightSum <= ew) return Infinity;
  return (e + meanAbs * ew) / (weightSum - ew);
}
