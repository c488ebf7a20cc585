import { encodeTensors } from '../../shared/codec/modelCodec';
import type { ClientAggregationMode } from './clientAggregationMode';

/** Mode `none` (client half): the delta itself, codec-encoded and uploaded with the training metrics. */
export const noneClientMode: ClientAggregationMode = {
  name: 'none',
  open: ({ connection }) => ({
    async onTask(task, training) {
      const trained = await training;
      if (!trained) return;
      const { loss, accuracy } = trained.metrics;
      await connection.submitUpdate(task, encodeTensors(trained.tensors), trained.numExamples, { loss, accuracy });
    },
    close() {},
  }),
};
