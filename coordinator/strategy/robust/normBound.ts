/** The L2 norm of a vector held as several tensors. */
export function l2Norm(tensors: readonly Float64Array[]): number {
  let squared = 0;
  for (const t of tensors) for (let j = 0; j < t.length; j++) squared += t[j] * t[j];
  return Math.sqrt(squared);
}

/**
 * Norm bounding (Sun, Kairouz, Suresh & McMahan, "Can You Really Backdoor Federated Learning?",
 * 2019, section 4, norm thresholding): an update longer than maxNorm is scaled down to maxNorm,
 * Δ · min(1, maxNorm / ||Δ||). The paper bounds each client's update; the server applies it to the
 * round's mean update, which works in every aggregation mode (the coordinator may only see a sum) and
 * bounds how far any round, whoever is in it, can move the model. Returns a new array when it scales.
 */
export function boundNorm(
  update: Float64Array[],
  maxNorm: number,
): { update: Float64Array[]; norm: number; scaled: boolean } {
  const norm = l2Norm(update);
  if (!(norm > maxNorm)) return { update, norm, scaled: false };
  const k = maxNorm / norm;
  return { update: update.map((t) => t.map((v) => v * k)), norm, scaled: true };
}
