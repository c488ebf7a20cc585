import { LIMITS, type JobSpec, type NoneOptions } from '../../../shared/schemas/jobSpec';
import { TributaryError } from '../../../shared/errors';
import type { CollectionContext, CoordinatorAggregationMode, PartKind, RoundCollection } from '../aggregationMode';
import { UploadCollection } from '../uploads/uploadCollection';
import { PlaintextAggregator } from './plaintextAggregator';

/** The `none` options of a spec of this mode. */
export function noneOptions(spec: JobSpec): NoneOptions {
  if (spec.secureAggregation !== 'none') throw new TributaryError('INTERNAL', `Job is not in mode "none".`);
  return spec.none;
}

/**
 * Mode `none` (research, opt-in): clients upload their deltas in the clear; the coordinator sums
 * them (and sees each one). Clients report training metrics with their commit.
 */
export function createNoneMode(): CoordinatorAggregationMode {
  return {
    name: 'none',
    assertModelFits(_spec: JobSpec, parameters: number): void {
      if (parameters > LIMITS.maxParameters) {
        throw new TributaryError(
          'JOB_SPEC_INVALID',
          `Models may have at most ${LIMITS.maxParameters} parameters; this one has ${parameters}.`,
          { details: { parameters, maxParameters: LIMITS.maxParameters } },
        );
      }
    },
    parts: () => ({ kind: 'client' as PartKind, membersPerPart: 1 }),
    openCollection(context: CollectionContext): RoundCollection {
      const aggregator = new PlaintextAggregator(context.job.weightManifest, {
        maxExampleWeight: noneOptions(context.job.spec).maxExampleWeight,
        keepClientUpdates: context.keepParts,
      });
      return new UploadCollection(context, aggregator, { modeName: 'none', keepMetrics: true });
    },
  };
}
