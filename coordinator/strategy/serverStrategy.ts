import type { NamedTensor } from '../../shared/codec/tensors';
import type { JobSpec } from '../../shared/schemas/jobSpec';
import type { RobustRule, StrategyName } from '../../shared/schemas/strategySpec';
import { assertServerStepValid } from './aggregateGuard';
import { assertUsable } from './fedAvg';
import { type ServerOptimizer, stateByName, stateFor, stateTensor } from './optimizers/serverOptimizer';
import { boundNorm } from './robust/normBound';
import { robustMeanUpdate } from './robust/robustMean';
import { assertEnoughParts } from './robust/requirements';
import {
  type AggregatedUpdates,
  type ClientEvaluation,
  type Strategy,
  type TrainPlan,
  type UpdatePart,
  baseTrainConfig,
  sampleClients,
  sampleSize,
  weightedMeanMetrics,
} from './strategy';

/** How a ServerStrategy forms and applies the round's update. */
export interface ServerStrategyOptions {
  name: StrategyName;
  /** FedProx's proximal coefficient sent to clients (0 for every other strategy). */
  proximalMu: number;
  /** How the server applies the mean update. */
  optimizer: ServerOptimizer;
  /** Robust rule over the round's parts; absent: the weighted mean Σ w_i·Δ_i / Σ w_i. */
  robust?: RobustRule;
  /** L2 bound on the mean update (norm bounding); absent: unbounded. */
  maxUpdateNorm?: number;
}

/** Prefix of centered clipping's centre (the previous round's mean update) in the strategy state. */
const CENTRE = 'center';

/**
 * Every Tributary strategy, in three stages kept apart (the split of Reddi et al. 2021 between the
 * pseudo-gradient and the server optimiser):
 * 1. the mean update Δ: the example-weighted mean of the round's sums (FedAvg), or a robust rule over
 *    the round's parts (robust/robustMean.ts), then scaled down to `maxUpdateNorm` if longer (norm
 *    bounding);
 * 2. the server step: the optimiser (plain step for FedAvg and FedProx, FedAvgM, FedAdam, FedYogi,
 *    FedAdagrad) moves the model by Δ;
 * 3. the guard (aggregateGuard.ts): inputs, Δ, the new weights and the new state must be finite and
 *    in range, or the step throws ROUND_AGGREGATE_INVALID and nothing is returned to commit.
 * State (optimiser moments, centered clipping's centre) goes in and out as named tensors. Pure: no
 * I/O, inputs are never mutated.
 */
export class ServerStrategy implements Strategy {
  readonly name: StrategyName;

  constructor(
    private readonly spec: JobSpec,
    private readonly options: ServerStrategyOptions,
  ) {
    this.name = options.name;
  }

  configureTrain(ctx: { round: number; available: readonly string[]; rng: () => number }): TrainPlan {
    const k = sampleSize(this.spec, ctx.available.length);
    return {
      selected: sampleClients(ctx.available, k, ctx.rng),
      config: baseTrainConfig(this.spec, ctx.round, this.options.proximalMu),
    };
  }

  aggregateTrain(
    global: readonly NamedTensor[],
    updates: AggregatedUpdates,
    state: readonly NamedTensor[] | undefined,
    parts?: readonly UpdatePart[],
  ): { weights: NamedTensor[]; state?: NamedTensor[] } {
    assertUsable(global, updates);
    assertServerStepValid({ updates });
    const previous = stateByName(state);
    const { robust, maxUpdateNorm, optimizer } = this.options;
    let update: Float64Array[];
    if (robust) {
      if (!parts || parts.length === 0) assertEnoughParts(robust, 0);
      const centre =
        robust.rule === 'centered-clipping'
          ? global.map((t) => {
              const c = stateFor(previous, CENTRE, t);
              return c ? Float64Array.from(c) : new Float64Array(t.data.length);
            })
          : undefined;
      update = robustMeanUpdate(
        robust,
        parts ?? [],
        global.map((t) => t.data.length),
        centre,
      ).update;
    } else {
      const scale = 1 / updates.totalWeight;
      update = updates.weightedDeltaSum.map((sum) => sum.map((v) => v * scale));
    }
    if (maxUpdateNorm !== undefined) update = boundNorm(update, maxUpdateNorm).update;
    assertServerStepValid({ meanUpdate: update, ...(parts ? { parts } : {}) });
    const step = optimizer.step(global, update, previous);
    const nextState =
      robust?.rule === 'centered-clipping'
        ? [...step.state, ...global.map((t, i) => stateTensor(CENTRE, t, Float32Array.from(update[i])))]
        : step.state;
    assertServerStepValid({ weights: step.weights, state: nextState });
    return nextState.length > 0 ? { weights: step.weights, state: nextState } : { weights: step.weights };
  }

  aggregateMetrics(results: readonly ClientEvaluation[]): Record<string, number> {
    return weightedMeanMetrics(results);
  }
}
