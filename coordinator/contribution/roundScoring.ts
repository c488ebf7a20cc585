import type { NamedTensor } from '../../shared/codec/tensors';
import type { ContributionOptions } from '../../shared/schemas/jobSpec';
import type { RoundContribution } from '../store/store';
import type { AggregatedUpdates } from '../strategy/strategy';
import { coalitionUtility, type ModelMetric } from './coalitionUtility';
import { exactShapley, gtgShapley, type Utility } from './shapley';

/** One player of a round's game: a client (plaintext) or a cohort (private modes), with its summed update. */
export interface RoundPlayer {
  members: readonly string[];
  updates: AggregatedUpdates;
}

export interface ScoreRoundInput {
  previous: readonly NamedTensor[];
  players: readonly RoundPlayer[];
  metric: ModelMetric;
  options: ContributionOptions;
  /** Seed of GTG-Shapley's permutations. */
  seed: number;
  /**
   * Called once per coalition the Shapley routine evaluated (players by index, sorted; U(∅) = 0
   * included), so the values can be recomputed from the utilities alone (the signed scoring transcript).
   */
  onUtility?: (coalition: readonly number[], utility: number) => void;
}

/**
 * Shapley values of one round's players for U(S) = metric(previous + FedAvg step of S) - metric(previous):
 * exact up to `options.exactUpTo` players, GTG-Shapley (capped at `options.maxEvaluations`) above.
 */
export async function scoreRound(input: ScoreRoundInput): Promise<RoundContribution> {
  const { previous, players, options } = input;
  let evaluations = 0;
  const metric: ModelMetric = (weights) => {
    evaluations++;
    return input.metric(weights);
  };
  const baseline = await metric(previous);
  const coalitionValue = coalitionUtility(
    previous,
    players.map((p) => p.updates),
    metric,
    baseline,
  );
  const utility: Utility = async (coalition) => {
    const value = await coalitionValue(coalition);
    input.onUtility?.(coalition, value);
    return value;
  };
  const n = players.length;
  const exact = n <= options.exactUpTo;
  const result = exact
    ? await exactShapley(n, utility)
    : await gtgShapley(n, utility, { maxEvaluations: options.maxEvaluations, seed: input.seed });
  return {
    method: exact ? 'exact' : 'gtg',
    metric: options.metric,
    baseline,
    improvement: result.fullUtility,
    evaluations,
    values: players.map((p, i) => ({ members: [...p.members], value: result.values[i] })),
  };
}
