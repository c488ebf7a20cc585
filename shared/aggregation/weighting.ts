import { TributaryError } from '../errors';

/**
 * How a private mode's client weights its update (both `secagg` and `paillier`), as in Flower's
 * SecAgg+ mod: it scales the delta by ratio = min(examples, maxWeight) / maxWeight (in [0, 1], so the
 * scaled values stay inside the clipping range) and appends the ratio as one extra element. The
 * aggregate's last element is the sum of ratios; the coordinator multiplies both by maxWeight to get
 * Σ w_i·Δ_i and Σ w_i in examples, the unit every mode reports.
 */
export function weightUpdate(delta: ArrayLike<number>, examples: number, maxWeight: number): Float32Array {
  const ratio = weightRatio(examples, maxWeight);
  const out = new Float32Array(delta.length + 1);
  for (let i = 0; i < delta.length; i++) out[i] = delta[i] * ratio;
  out[delta.length] = ratio;
  return out;
}

/** What `clipAndWeightUpdate` produced, and how much it had to clip. */
export interface ClippedWeightedUpdate {
  /** ratio·clip(Δ_j) per value, then the ratio (as `weightUpdate`). */
  values: Float32Array;
  /** How many delta values were outside [-clipRange, clipRange] and were clipped. */
  clipped: number;
  /** The largest |Δ_j| seen, so the caller can say how far outside the range it went. */
  maxAbs: number;
}

/**
 * `weightUpdate` of the delta clipped to [-clipRange, clipRange] value by value (how the clients of
 * both private modes weight). Clipping the delta itself, not ratio·Δ, is what makes the aggregate
 * checkable: every honest weighted value then satisfies |ratio_i·Δ_ij| ≤ clipRange·ratio_i, so each
 * coordinate of an honest sum lies within ±clipRange·Σ ratio_i, and the coordinator can refuse a
 * revealed sum that no set of honest clients could have produced (coordinator/aggregation/
 * honestSumBounds.ts) without seeing a single update. Non-finite values throw CODEC_NON_FINITE.
 */
export function clipAndWeightUpdate(
  delta: ArrayLike<number>,
  examples: number,
  maxWeight: number,
  clipRange: number,
): ClippedWeightedUpdate {
  if (!(Number.isFinite(clipRange) && clipRange > 0)) {
    throw new TributaryError('CONFIG_INVALID', `clipRange must be a positive finite number, got ${clipRange}`);
  }
  const ratio = weightRatio(examples, maxWeight);
  const values = new Float32Array(delta.length + 1);
  let clipped = 0;
  let maxAbs = 0;
  for (let i = 0; i < delta.length; i++) {
    const x = delta[i];
    if (!Number.isFinite(x)) {
      throw new TributaryError('CODEC_NON_FINITE', `delta value ${i} is ${x}; only finite updates can be weighted`);
    }
    const a = Math.abs(x);
    if (a > maxAbs) maxAbs = a;
    let v = x;
    if (a > clipRange) {
      clipped++;
      v = x > 0 ? clipRange : -clipRange;
    }
    values[i] = v * ratio;
  }
  values[delta.length] = ratio;
  return { values, clipped, maxAbs };
}

/** ratio = min(examples, maxWeight) / maxWeight, in (0, 1]; throws for a non-positive count or cap. */
export function weightRatio(examples: number, maxWeight: number): number {
  if (!(Number.isFinite(examples) && examples > 0)) {
    throw new TributaryError('VALIDATION_FAILED', `examples must be a positive number, got ${examples}`);
  }
  if (!(Number.isFinite(maxWeight) && maxWeight > 0)) {
    throw new TributaryError('CONFIG_INVALID', `maxWeight must be a positive number, got ${maxWeight}`);
  }
  return Math.min(examples, maxWeight) / maxWeight;
}
