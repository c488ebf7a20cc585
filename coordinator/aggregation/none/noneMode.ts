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
 * them (and sees each one). Clients report training metrics with their commit (not under DP, where
 * the commit carries only the unclipped bit and the coordinator adds central noise).
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
    // The coordinator sees every update: it can only add the noise itself (and clips again).
    privacyNoise: ['central'],
    openCollection(context: CollectionContext): RoundCollection {
      const privacy = context.privacy;
      const aggregator = new PlaintextAggregator(context.job.weightManifest, {
        maxExampleWeight: noneOptions(context.job.spec).maxExampleWeight,
        keepClientUpdates: context.keepParts,
        ...(privacy ? { privacy: { clippingNorm: privacy.clippingNorm } } : {}),
      });
      // Under DP per-client training metrics would be released outside the accounted mechanism.
      return new UploadCollection(context, aggregator, { modeName: 'none', keepMetrics: !privacy });
    },
  };
}
