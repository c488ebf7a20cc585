import { TributaryError } from '../errors';

/**
 * How a private mode's client weights its update (both `secagg` and `paillier`), as in Flower's
 * SecAgg+ mod: it scales the delta by ratio = min(examples, maxWeight) / maxWeight (in [0, 1], so the
 * scaled values stay inside the clipping range) and appends the ratio as one extra element. The
 * aggregate's last element is the sum of ratios; the coordinator multiplies both by maxWeight to get
 * Σ w_i·Δ_i and Σ w_i in examples, the unit every mode reports.
 */
export function weightUpdate(delta: ArrayLike<number>, examples: number, maxWeight: number): Float32Array {
  if (!(Number.isFinite(examples) && examples > 0)) {
    throw new TributaryError('VALIDATION_FAILED', `examples must be a positive number, got ${examples}`);
  }
  if (!(Number.isFinite(maxWeight) && maxWeight > 0)) {
    throw new TributaryError('CONFIG_INVALID', `maxWeight must be a positive number, got ${maxWeight}`);
  }
  const ratio = Math.min(examples, maxWeight) / maxWeight;
  const out = new Float32Array(delta.length + 1);
  for (let i = 0; i < delta.length; i++) out[i] = delta[i] * ratio;
  out[delta.length] = ratio;
  return out;
}
