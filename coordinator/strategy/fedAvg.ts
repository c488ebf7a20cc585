import type { NamedTensor } from '../../shared/codec/tensors';
import { TributaryError } from '../../shared/errors';
import type { JobSpec } from '../../shared/schemas/jobSpec';
import {
  type AggregatedUpdates,
  type ClientEvaluation,
  type Strategy,
  type TrainPlan,
  baseTrainConfig,
  sampleClients,
  sampleSize,
  weightedMeanMetrics,
} from './strategy';

/**
 * FedAvg (McMahan et al., AISTATS 2017): the new global model is the example-weighted mean of the
 * clients' models, i.e. w + Σ n_i Δ_i / Σ n_i.
 */
export class FedAvg implements Strategy {
  readonly name: JobSpec['strategy']['name'] = 'fedavg';

  constructor(protected readonly spec: JobSpec) {}

  configureTrain(ctx: { round: number; available: readonly string[]; rng: () => number }): TrainPlan {
    const k = sampleSize(this.spec, ctx.available.length);
    return {
      selected: sampleClients(ctx.available, k, ctx.rng),
      config: baseTrainConfig(this.spec, ctx.round, this.proximalMu()),
    };
  }

  aggregateTrain(
    global: readonly NamedTensor[],
    updates: AggregatedUpdates,
    _state?: readonly NamedTensor[],
  ): { weights: NamedTensor[]; state?: NamedTensor[] } {
    return { weights: fedAvgWeights(global, updates) };
  }

  aggregateMetrics(results: readonly ClientEvaluation[]): Record<string, number> {
    return weightedMeanMetrics(results);
  }

  protected proximalMu(): number {
    return 0;
  }
}

/** One FedAvg step: w + Σ n_i Δ_i / Σ n_i (also what contribution scoring rebuilds a coalition's model with). */
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

export function assertUsable(global: readonly NamedTensor[], updates: AggregatedUpdates): void {
  if (updates.totalWeight <= 0 || updates.clientCount <= 0) {
    throw new TributaryError('ROUND_QUORUM_NOT_MET', 'Cannot aggregate zero updates.');
  }
  if (updates.weightedDeltaSum.length !== global.length) {
    throw new TributaryError(
      'MODEL_SHAPE_MISMATCH',
      `Expected ${global.length} summed tensors, got ${updates.weightedDeltaSum.length}.`,
    );
  }
}
