import { privacyPlanOf, roundClippingNorm, UNCLIPPED_METRIC } from '../../shared/aggregation/privateUpdate';
import { unflattenByManifest } from '../../shared/codec/manifestVector';
import { encodeTensors } from '../../shared/codec/modelCodec';
import { totalParameters } from '../../shared/codec/tensors';
import { clipToNorm } from '../../shared/privacy/clipping';
import type { ClientAggregationMode } from './clientAggregationMode';

/**
 * Mode `none` (client half): the delta itself, codec-encoded and uploaded with the training metrics.
 * Under DP (a `privacy` block) the delta is clipped to the round's C first and uploaded with weight 1
 * and the unclipped bit as its only metric (training metrics would leak outside the accounted noise).
 */
export const noneClientMode: ClientAggregationMode = {
  name: 'none',
  revealsUpdates: true,
  open: ({ connection, joined }) => {
    const plan = privacyPlanOf(joined.spec, totalParameters(joined.weightManifest));
    return {
      async onTask(task, training) {
        const trained = await training;
        if (!trained) return;
        if (plan) {
          const { update, clipped } = clipToNorm(trained.delta, roundClippingNorm(plan, task.config));
          const tensors = unflattenByManifest(update, joined.weightManifest);
          await connection.submitUpdate(task, encodeTensors(tensors), 1, { [UNCLIPPED_METRIC]: clipped ? 0 : 1 });
          return;
        }
        const { loss, accuracy } = trained.metrics;
        await connection.submitUpdate(task, encodeTensors(trained.tensors), trained.numExamples, { loss, accuracy });
      },
      close() {},
    };
  },
};
