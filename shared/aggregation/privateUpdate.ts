import { TributaryError } from '../errors';
import { clipToNorm } from '../privacy/clipping';
import { type DistributedNoisePlan, planDistributedNoise } from '../privacy/distributedNoise';
import { paddedLength } from '../privacy/hadamardRotation';
import type { JobSpec } from '../schemas/jobSpec';
import { assertPrivacyUsable, type PrivacyJobContext, type PrivacyPlan } from '../schemas/privacySpec';

/*
 * How an update leaves a client of a job with a `privacy` block, in every mode, and how the coordinator
 * reads the sum: written once here so the two halves cannot drift (docs/privacy.md).
 *
 * Central noise: the client clips its delta to the round's C and every client counts once (uniform
 * weights, DP-FedAvg, McMahan et al. 2018: an example-count weight would make one client's influence,
 * the sensitivity, unbounded). Modes with a weight slot (the private modes' last value,
 * shared/aggregation/weighting.ts) carry the unclipped bit b_i = [||Delta_i|| <= C] there instead:
 * every weight is 1, so the weights' sum is the public contributor count, and the slot's sum is the
 * count of unclipped updates that the coordinator noises (Andrew et al. 2021). `none` uploads the
 * clipped delta with numExamples 1 and the bit as the commit's only metric.
 *
 * Distributed noise (secagg): the vector is `encodeDistributedUpdate`'s (the rotated, scaled, rounded,
 * noised update, then the bit), of `distributedVectorLength` values, and the coordinator decodes the
 * SecAgg+ sum with `decodeDistributedSum`, both under `distributedNoisePlanOf`.
 */

/**
 * The privacy plan of a job (undefined without a `privacy` block): assertPrivacyUsable on the spec and
 * the model's parameter count. Deterministic, so the coordinator (at creation and on every resume) and
 * every client (from the spec it verified at join) derive the same plan.
 */
export function privacyPlanOf(spec: JobSpec, modelParameters: number): PrivacyPlan | undefined {
  if (spec.privacy === undefined) return undefined;
  const context: PrivacyJobContext = {
    rounds: spec.rounds,
    minClients: spec.minClients,
    maxClients: spec.maxClients,
    fractionFit: spec.fractionFit,
    // Modes registered at run time are not built-in: privacy refuses distributed noise for them, as for none.
    secureAggregation: spec.secureAggregation as PrivacyJobContext['secureAggregation'],
    secagg: (spec as { secagg?: { cohortSize?: number } }).secagg,
    privacy: spec.privacy,
  };
  return assertPrivacyUsable(context, { modelParameters });
}

/** The metric a `none` client's commit carries under privacy: 1 when its update was not clipped, else 0. */
export const UNCLIPPED_METRIC = 'unclipped';

/** A central-noise update: the delta clipped to C, then the unclipped bit (its weight slot). */
export interface ClippedUpdate {
  /** dimension + 1 values: the clipped delta, then 1 (not clipped) or 0 (clipped). */
  vector: Float32Array;
  unclipped: boolean;
  /** The delta's L2 norm before clipping. */
  norm: number;
}

/** Clips `delta` to L2 norm `clipNorm` and appends the unclipped bit (central noise, every mode with a weight slot). */
export function clippedWithBit(delta: Float32Array, clipNorm: number): ClippedUpdate {
  const { update, clipped, norm } = clipToNorm(delta, clipNorm);
  const vector = new Float32Array(delta.length + 1);
  vector.set(update);
  vector[delta.length] = clipped ? 0 : 1;
  return { vector, unclipped: !clipped, norm };
}

/**
 * The round's C from a task's config, checked against the job's plan: a task of a DP job must carry
 * one, and a fixed norm must be the spec's (a client clips only to a norm the buyer set; under adaptive
 * clipping the coordinator moves C, and the noise every party adds is proportional to it).
 */
export function roundClippingNorm(plan: PrivacyPlan, config: { clippingNorm?: number }): number {
  const c = config.clippingNorm;
  if (c === undefined) {
    throw new TributaryError(
      'VALIDATION_FAILED',
      'The round task carries no clippingNorm; the job has a privacy block, so every task must say which C to clip to.',
    );
  }
  if (plan.clipping.mode === 'fixed' && c !== plan.clipping.norm) {
    throw new TributaryError(
      'VALIDATION_FAILED',
      `The round task's clippingNorm is ${c}; the job's privacy block fixes it at ${plan.clipping.norm}.`,
    );
  }
  return c;
}

/** The distributed-noise plan of one round: every client and the coordinator derive it alike from the job's plan, the model size and C. */
export function distributedNoisePlanOf(plan: PrivacyPlan, dimension: number, clipNorm: number): DistributedNoisePlan {
  return planDistributedNoise({
    dimension,
    clipNorm,
    noiseMultiplier: plan.updateNoiseMultiplier,
    minContributors: plan.minContributors,
    maxContributors: plan.maxContributors,
    countNoiseStddev: plan.clippedCountNoise,
  });
}

/** Values in a distributed-noise SecAgg+ vector for a model of `dimension` parameters (the same for every C). */
export function distributedVectorLength(dimension: number): number {
  return paddedLength(dimension) + 1;
}
