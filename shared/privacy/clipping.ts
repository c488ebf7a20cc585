import { TributaryError } from '../errors';

/** The L2 norm of a vector, accumulated in float64. */
export function l2Norm(values: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += values[i] * values[i];
  return Math.sqrt(sum);
}

/** What `clipToNorm` did. */
export interface ClipResult {
  /** The update scaled to L2 norm at most `clipNorm` (a new array; the input is not touched). */
  update: Float32Array;
  /** Whether the update was longer than `clipNorm` and was scaled down. */
  clipped: boolean;
  /** The L2 norm before clipping. */
  norm: number;
}

/**
 * L2 clipping, the step that bounds one client's influence (its sensitivity) to `clipNorm`:
 * update * min(1, C / ||update||). The result's float32 norm can exceed C by float32 rounding
 * (about 1e-7 relative), so C is shrunk by 1e-6 relative before scaling: the output is at most C.
 * NaN or Infinity throw CODEC_NON_FINITE (their norm bounds nothing).
 */
export function clipToNorm(update: Float32Array, clipNorm: number): ClipResult {
  if (!(clipNorm > 0 && Number.isFinite(clipNorm))) {
    throw new TributaryError('CONFIG_INVALID', `the clipping norm must be a positive finite number, got ${clipNorm}`);
  }
  const norm = l2Norm(update);
  if (!Number.isFinite(norm)) {
    throw new TributaryError('CODEC_NON_FINITE', 'the update contains NaN or Infinity; it cannot be clipped');
  }
  const out = new Float32Array(update);
  if (norm <= clipNorm) return { update: out, clipped: false, norm };
  const factor = (clipNorm * (1 - 1e-6)) / norm;
  for (let i = 0; i < out.length; i++) out[i] *= factor;
  return { update: out, clipped: true, norm };
}
