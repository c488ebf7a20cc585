import type { NamedTensor } from '../../shared/codec/tensors';
import { sumUpdates } from '../strategy/sumUpdates';
import { fedAvgWeights } from '../strategy/fedAvg';
import type { AggregatedUpdates } from '../strategy/strategy';
import type { Utility } from './shapley';

/** The validation metric of a global model, oriented so that higher is better (accuracy, or -loss). */
export type ModelMetric = (weights: readonly NamedTensor[]) => Promise<number>;

/**
 * The global model a coalition's updates alone would give: previous + Σ_{p∈S} sum_p / Σ_{p∈S} n_p
 * (one FedAvg step from the players' summed, example-weighted deltas). Works on sums only, so a
 * player can be one client (plaintext) or a whole secure-aggregation cohort. The grand coalition
 * gives exactly the round's model under FedAvg.
 */
export function fedAvgStep(previous: readonly NamedTensor[], players: readonly AggregatedUpdates[]): NamedTensor[] {
  if (players.length === 0) return previous.map((t) => ({ name: t.name, shape: [...t.shape], data: t.data }));
  return fedAvgWeights(previous, sumUpdates(players));
}

/**
 * U(S) = metric(fedAvgStep(previous, S)) - baseline, where baseline = metric(previous), so U(∅) = 0
 * without an evaluation. Caching is left to the Shapley routines (each coalition is asked once).
 */
export function coalitionUtility(
  previous: readonly NamedTensor[],
  players: readonly AggregatedUpdates[],
  metric: ModelMetric,
  baseline: number,
): Utility {
  return async (coalition) => {
    if (coalition.length === 0) return 0;
    return (
      (await metric(
        fedAvgStep(
          previous,
          coalition.map((i) => players[i]),
        ),
      )) - baseline
    );
  };
}
