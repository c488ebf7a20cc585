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
 */
export function createSecAggMode(): CoordinatorAggregationMode {
  return {
    name: 'secagg',
    assertModelFits(_spec: JobSpec, parameters: number): void {
      // The masked vector (4 bytes per parameter, plus the weight) travels in at most MAX_SECAGG_PARTS chunks.
      if (parameters > SECAGG_MAX_PARAMETERS) {
        throw new TributaryError(
          'JOB_SPEC_INVALID',
          `secureAggregation "secagg" supports models of at most ${SECAGG_MAX_PARAMETERS} parameters; this model has ${parameters}. Use "none" or a smaller model.`,
          { details: { parameters, maxParameters: SECAGG_MAX_PARAMETERS } },
        );
      }
    },
    // Without cohortSize a round is one cohort: one sum, no parts to compare.
    parts: (spec) => {
      const size = secaggOptions(spec).cohortSize;
      return size === undefined ? undefined : { kind: 'cohort' as PartKind, membersPerPart: size };
    },
    openCollection: (context: CollectionContext): RoundCollection =>
      new SecAggCollection(context, secaggOptions(context.job.spec)),
  };
}
