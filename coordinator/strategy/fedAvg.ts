import type { NamedTensor } from '../../shared/codec/tensors';
import { TributaryError } from '../../shared/errors';
import type { AggregatedUpdates } from './strategy';

/** One FedAvg step: w + Σ n_i Δ_i / Σ n_i (what contribution scoring rebuilds a coalition's model with). */
export function fedAvgWeights(global: readonly NamedTensor[], updates: AggregatedUpdates): NamedTensor[] {
  assertUsable(global, updates);
  const scale = 1 / updates.totalWeight;
  return global.map((t, i) => {
    const sum = updates.weightedDeltaSum[i];
    const out = new Float32Array(t.data.length);
    for (let j = 0; j < out.length; j++) out[j] = t.data[j] + sum[j] * scale;
    return { name: t.name, shape: [...t.shape], data: out };
  });
}

/**
 * Throws ROUND_QUORUM_NOT_MET for an empty round, ROUND_AGGREGATE_INVALID for a summed weight that is
 * not positive and finite, and MODEL_SHAPE_MISMATCH for sums that do not fit the model.
 */
export function assertUsable(global: readonly NamedTensor[], updates: AggregatedUpdates): void {
  if (updates.clientCount <= 0) {
    throw new TributaryError('ROUND_QUORUM_NOT_MET', 'Cannot aggregate zero updates.');
  }
  const w = updates.totalWeight;
  if (!(w > 0) || !Number.isFinite(w)) {
    throw new TributaryError(
      'ROUND_AGGREGATE_INVALID',
      `Not committing the round: the summed weight is ${w}; expected a positive finite number.`,
      { details: { what: 'totalWeight' } },
    );
  }
  if (updates.weightedDeltaSum.length !== global.length) {
    throw new TributaryError(
      'MODEL_SHAPE_MISMATCH',
      `Expected ${global.length} summed tensors, got ${updates.weightedDeltaSum.length}.`,
    );
  }
  updates.weightedDeltaSum.forEach((sum, i) => {
    if (sum.length !== global[i].data.length) {
      throw new TributaryError(
        'MODEL_SHAPE_MISMATCH',
        `Summed tensor ${i} has ${sum.length} values; ${JSON.stringify(global[i].name)} has ${global[i].data.length}.`,
      );
    }
  });
}
