import type { NamedTensor } from '../../shared/codec/tensors';
import type { JobSpec, TrainConfig } from '../../shared/schemas/jobSpec';

/** Which clients train this round and with what configuration. */
export interface TrainPlan {
  selected: string[];
  config: TrainConfig;
}

/**
 * What the aggregation mode hands to a strategy: only sums, never one client's update. One unit
 * everywhere: a client's weight w_i is its example count capped at the mode's maxExampleWeight, and
 * every mode reports Σ w_i·Δ_i and Σ w_i in those units (private modes rescale their [0, 1] ratios).
 */
export interface AggregatedUpdates {
  /** Σ_i w_i · Δ_i per tensor, Δ_i = client i's local weights minus the global weights. */
  weightedDeltaSum: Float64Array[];
  /** Σ_i w_i, in (capped) examples. */
  totalWeight: number;
  /** How many clients the sums cover. */
  clientCount: number;
}

/**
 * The parts a round's sum is made of, when the mode can see them: each client's own w_i·Δ_i
 * (plaintext) or each SecAgg+ cohort's sum (secagg with cohorts). Robust strategies aggregate these;
 * their sum is the round's AggregatedUpdates.
 */
export interface UpdatePart {
  /** Who contributed to this part (one client, or a cohort's contributors). */
  members: readonly string[];
  updates: AggregatedUpdates;
}

export interface ClientEvaluation {
  numExamples: number;
  metrics: Record<string, number>;
}

/**
 * A federated optimisation strategy, kept pure in the manner of Flower's `Strategy`: it decides who
 * trains and how the server model moves, and never touches sockets, timers or the store.
 * Strategy state (e.g. FedAdam's moments) is passed in and returned as named tensors so the round
 * runner can checkpoint it.
 */
export interface Strategy {
  readonly name: JobSpec['strategy']['name'];
  /** Samples this round's clients from `available` (already sorted) using `rng`. */
  configureTrain(ctx: { round: number; available: readonly string[]; rng: () => number }): TrainPlan;
  /**
   * Computes the next global model from the current one and the aggregated updates. `parts` are the
   * per-client or per-cohort sums when the mode has them (robust rules need them; FedAvg ignores them).
   */
  aggregateTrain(
    global: readonly NamedTensor[],
    updates: AggregatedUpdates,
    state: readonly NamedTensor[] | undefined,
    parts?: readonly UpdatePart[],
  ): { weights: NamedTensor[]; state?: NamedTensor[] };
  /** Example-weighted means of the clients' reported metrics. */
  aggregateMetrics(results: readonly ClientEvaluation[]): Record<string, number>;
}

/** How many of `available` clients to sample: fraction, clamped to [minClients, maxClients]. */
export function sampleSize(spec: JobSpec, available: number): number {
  const wanted = Math.ceil(spec.fractionFit * available);
  return Math.min(available, spec.maxClients, Math.max(spec.minClients, wanted));
}

/** Seeded partial Fisher-Yates: the first k of a shuffled copy. */
export function sampleClients(available: readonly string[], k: number, rng: () => number): string[] {
  const pool = [...available];
  const n = Math.min(k, pool.length);
  for (let i = 0; i < n; i++) {
    const j = i + Math.floor(rng() * (pool.length - i));
    [pool[i], pool[j]] = [pool[j], pool[i]];
  }
  return pool.slice(0, n);
}

/**
 * Example-weighted mean of every metric name that appears. Clients report any finite values: the mean
 * is taken as a convex combination (each value times its share of the examples), so it stays within
 * the values' range instead of overflowing to Infinity or NaN (1.7e308 times an example count), which
 * the round record, its JSON and a MongoDB-compatible store could not carry; a mean that still is not
 * finite is left out.
 */
export function weightedMeanMetrics(results: readonly ClientEvaluation[]): Record<string, number> {
  const weights = new Map<string, number>();
  for (const r of results) {
    for (const k of Object.keys(r.metrics)) weights.set(k, (weights.get(k) ?? 0) + r.numExamples);
  }
  const means = new Map<string, number>();
  for (const r of results) {
    for (const [k, v] of Object.entries(r.metrics)) {
      const total = weights.get(k)!;
      if (total > 0) means.set(k, (means.get(k) ?? 0) + (r.numExamples / total) * v);
    }
  }
  const out: Record<string, number> = {};
  for (const [k, mean] of means) if (Number.isFinite(mean)) out[k] = mean;
  return out;
}

/** Base train configuration from the job spec. */
export function baseTrainConfig(spec: JobSpec, round: number, proximalMu: number): TrainConfig {
  return {
    localEpochs: spec.localEpochs,
    batchSize: spec.batchSize,
    learningRate: spec.learningRate,
    proximalMu,
    seed: (spec.seed * 1_000_003 + round) % 2 ** 31,
  };
}
