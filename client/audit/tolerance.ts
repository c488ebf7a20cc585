/** A model's metrics on the buyer's validation set, as the audit recomputes them. */
export interface ModelScore {
  accuracy: number;
  /** Mean cross-entropy. */
  loss: number;
}

/**
 * Whether a metric the coordinator reported differs from the audit's own evaluation by more than
 * `tolerance` (absolute, plus the same fraction of the value). Evaluations on another machine or
 * backend, or in other batch sizes, agree to about 1e-6, not bit for bit: float32 sums in another order.
 */
export function differs(reported: number, recomputed: number, tolerance: number): boolean {
  if (!Number.isFinite(reported) || !Number.isFinite(recomputed)) return reported !== recomputed;
  return Math.abs(reported - recomputed) > tolerance * (1 + Math.abs(recomputed));
}
