import { distributedVectorLength } from '../../../shared/aggregation/privateUpdate';
import { TributaryError } from '../../../shared/errors';
import { type JobSpec, SECAGG_MAX_PARAMETERS, type SecAggOptions } from '../../../shared/schemas/jobSpec';
import type { CollectionContext, CoordinatorAggregationMode, PartKind, RoundCollection } from '../aggregationMode';
import { SecAggCollection } from './secaggCollection';

/** The secagg options of a spec of this mode (defaults filled at parse time). */
export function secaggOptions(spec: JobSpec): SecAggOptions {
  if (spec.secureAggregation !== 'secagg') throw new TributaryError('INTERNAL', 'Job is not in mode "secagg".');
  return spec.secagg;
}

/**
 * Mode `secagg` (SecAgg+, the default): the round task starts training and one SecAgg+ session per
 * cohort runs the protocol; the coordinator learns only each cohort's sum (the parts, kind `cohort`).
 * Under DP (secaggEncoding.ts) the vectors carry clipped deltas and the unclipped bit (central noise,
 * added by the coordinator to the unmasked sum), or the clients' own noised integer encodings
 * (distributed noise: the coordinator never sees an un-noised sum).
 */
export function createSecAggMode(): CoordinatorAggregationMode {
  return {
    name: 'secagg',
    assertModelFits(spec: JobSpec, parameters: number): void {
      // The masked vector (4 bytes per parameter, plus the weight) travels in at most MAX_SECAGG_PARTS chunks.
      if (parameters > SECAGG_MAX_PARAMETERS) {
        throw new TributaryError(
          'JOB_SPEC_INVALID',
          `secureAggregation "secagg" supports models of at most ${SECAGG_MAX_PARAMETERS} parameters; this model has ${parameters}. Use "none" or a smaller model.`,
          { details: { parameters, maxParameters: SECAGG_MAX_PARAMETERS } },
        );
      }
      // Distributed DP noise rotates the update padded to a power of two: that vector must fit instead.
      if (spec.privacy?.noise === 'distributed' && distributedVectorLength(parameters) > SECAGG_MAX_PARAMETERS + 1) {
        throw new TributaryError(
          'JOB_SPEC_INVALID',
          `privacy.noise "distributed" sends ${distributedVectorLength(parameters)} values per client for this model of ${parameters} parameters (padded to a power of two); at most ${SECAGG_MAX_PARAMETERS + 1} fit. Use "central" noise or a smaller model.`,
          { details: { parameters, vectorLength: distributedVectorLength(parameters) } },
        );
      }
    },
    // Without cohortSize a round is one cohort: one sum, no parts to compare.
    parts: (spec) => {
      const size = secaggOptions(spec).cohortSize;
      return size === undefined ? undefined : { kind: 'cohort' as PartKind, membersPerPart: size };
    },
    // Central: the coordinator noises the unmasked sum; distributed: each client adds its share before masking.
    privacyNoise: ['central', 'distributed'],
    openCollection: (context: CollectionContext): RoundCollection =>
      new SecAggCollection(context, secaggOptions(context.job.spec)),
  };
}
