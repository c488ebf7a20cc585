import { TributaryError } from '../errors';
import { SECAGG_LIMITS, type SecAggParameters } from './messages';
import { recommendedNeighbourCount, recommendedThreshold } from './neighbours';
import { DEFAULT_QUANTIZATION } from './quantize';
import { secaggError } from './stages';

/** The job spec's `secagg` options a policy is derived from (SecAggOptions of shared/schemas/jobSpec.ts, defaults filled). */
export interface SecAggPolicyOptions {
  clippingRange: number;
  neighbourCount?: number;
  threshold?: number;
  cohortSize?: number;
}

/**
 * What a client accepts as SecAgg+ session parameters, derived from the job spec it joined
 * (`secaggPolicyFor`). A coordinator cannot weaken a session below it: fewer members (a victim and
 * sybils), a lower threshold or degree, other clipping or quantisation, another vector length.
 */
export interface SecAggPolicy {
  /** Fewest clients in a session's client list, and in the survivor set it unmasks: the job's cohortSize, else minClients. */
  readonly minClients: number;
  /** The spec's neighbourCount; unset: the default for each session's n (recommendedNeighbourCount). */
  readonly neighbourCount?: number;
  /** The spec's threshold; unset: the default for the required neighbour count (recommendedThreshold). */
  readonly threshold?: number;
  readonly clippingRange: number;
  /** Fixed by the protocol at DEFAULT_QUANTIZATION.quantizationRange (2^22). */
  readonly quantizationRange: number;
  /** The masked vector's length: the model's parameter count + 1 (the appended weight). */
  readonly vectorLength: number;
  /**
   * The inputs are any elements of Z_(2^32), not quantised values in [0, quantizationRange]: distributed
   * DP noise (shared/privacy/distributedNoise.ts) encodes signed integers mod 2^32. Only the client's
   * check of its own input depends on it; masking and summing are the same. @default false
   */
  readonly modularInput?: boolean;
}

const positiveInt = (v: unknown, min: number): v is number => Number.isInteger(v) && (v as number) >= min;

/**
 * The policy a client enforces for a job: `options` are the spec's secagg options with defaults
 * filled at parse time, `minClients` the spec's minClients, `vectorLength` the parameter count + 1
 * (or the distributed-noise encoding's length, with `input.modularInput`).
 */
export function secaggPolicyFor(
  options: SecAggPolicyOptions,
  minClients: number,
  vectorLength: number,
  input: { modularInput?: boolean } = {},
): SecAggPolicy {
  const fail = (what: string): never => {
    throw new TributaryError('CONFIG_INVALID', `SecAgg+ policy: ${what}`);
  };
  if (!positiveInt(minClients, 3)) fail(`minClients must be an integer >= 3, got ${minClients}`);
  if (options.cohortSize !== undefined && !positiveInt(options.cohortSize, 3))
    fail(`cohortSize must be an integer >= 3, got ${options.cohortSize}`);
  if (!positiveInt(vectorLength, 1) || vectorLength > SECAGG_LIMITS.maxVectorLength)
    fail(`vectorLength must be an integer in [1, ${SECAGG_LIMITS.maxVectorLength}], got ${vectorLength}`);
  if (!(Number.isFinite(options.clippingRange) && options.clippingRange > 0))
    fail(`clippingRange must be a positive number, got ${options.clippingRange}`);
  if (options.neighbourCount !== undefined && !positiveInt(options.neighbourCount, 2))
    fail(`neighbourCount must be an integer >= 2, got ${options.neighbourCount}`);
  if (options.threshold !== undefined && !positiveInt(options.threshold, 2))
    fail(`threshold must be an integer >= 2, got ${options.threshold}`);
  return Object.freeze({
    minClients: options.cohortSize ?? minClients,
    ...(options.neighbourCount === undefined ? {} : { neighbourCount: options.neighbourCount }),
    ...(options.threshold === undefined ? {} : { threshold: options.threshold }),
    clippingRange: options.clippingRange,
    quantizationRange: DEFAULT_QUANTIZATION.quantizationRange,
    vectorLength,
    ...(input.modularInput ? { modularInput: true } : {}),
  });
}

/** The neighbour count and threshold an honest coordinator uses for a session of n clients under `policy`. */
export function requiredGraphParameters(
  policy: SecAggPolicy,
  n: number,
): { neighbourCount: number; threshold: number } {
  const neighbourCount = policy.neighbourCount ?? recommendedNeighbourCount(n);
  return { neighbourCount, threshold: policy.threshold ?? recommendedThreshold(neighbourCount) };
}

/**
 * Throws SECAGG_PARAMETERS_REFUSED unless a session of `n` clients with `params` is at least as strong
 * as `policy`: n >= minClients; k >= the required k and t >= the required t, and 2t - k (how many
 * neighbours must collude before an inconsistent dropout story yields both of a client's secrets) no
 * smaller than the required one; clipping, quantisation and vector length exactly the policy's.
 */
export function checkSessionParameters(policy: SecAggPolicy, n: number, params: SecAggParameters): void {
  const refuse = (what: string, expected: unknown, got: unknown): never => {
    throw secaggError(
      'SECAGG_PARAMETERS_REFUSED',
      `SecAgg+ client: the job's policy needs ${what} ${String(expected)}, the session has ${String(got)}`,
      { parameter: what, expected, got },
    );
  };
  if (n < policy.minClients) refuse('at least this many session members:', policy.minClients, n);
  const required = requiredGraphParameters(policy, n);
  const k = params.neighbourCount;
  const t = params.threshold;
  if (k < required.neighbourCount) refuse('a neighbour count of at least', required.neighbourCount, k);
  if (t < required.threshold) refuse('a threshold of at least', required.threshold, t);
  if (2 * t - k < 2 * required.threshold - required.neighbourCount)
    refuse('2 x threshold - neighbourCount of at least', 2 * required.threshold - required.neighbourCount, 2 * t - k);
  if (params.clippingRange !== policy.clippingRange)
    refuse('clippingRange', policy.clippingRange, params.clippingRange);
  if (params.quantizationRange !== policy.quantizationRange)
    refuse('quantizationRange', policy.quantizationRange, params.quantizationRange);
  if (params.vectorLength !== policy.vectorLength) refuse('vectorLength', policy.vectorLength, params.vectorLength);
}
