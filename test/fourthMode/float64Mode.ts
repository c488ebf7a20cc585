/**
 * A test-only fourth aggregation mode, `x-float64`, proving the mode seam: every part of it lives in
 * this folder and reaches the system only through the registries. Each client uploads its weighted
 * delta and weight as little-endian Float64 values ([w·Δ..., w], numExamples 1: the weight travels in
 * the payload); the coordinator sums them in Float64 and reveals the sum. Options: `maxExampleWeight`.
 */
import { z } from 'zod';
import type {
  CollectionContext,
  CoordinatorAggregationMode,
  RoundCollection,
} from '../../coordinator/aggregation/aggregationMode';
import { UploadCollection, type UploadAggregator } from '../../coordinator/aggregation/uploads/uploadCollection';
import type { AggregatedUpdates } from '../../coordinator/strategy/strategy';
import type { ClientAggregationMode } from '../../client/updates/clientAggregationMode';
import { splitByManifest } from '../../shared/codec/manifestVector';
import { totalParameters } from '../../shared/codec/tensors';
import { TributaryError } from '../../shared/errors';
import type { AggregationSpecDefinition } from '../../shared/schemas/aggregationSpec';
import type { JobSpec } from '../../shared/schemas/jobSpec';

export const MODE = 'x-float64';

const OptionsSchema = z.object({ maxExampleWeight: z.number().int().positive().default(1_000) }).strict();
type Options = z.infer<typeof OptionsSchema>;

function optionsOf(spec: JobSpec): Options {
  if (spec.secureAggregation !== MODE || !('aggregationOptions' in spec)) throw new Error('not an x-float64 job');
  return OptionsSchema.parse(spec.aggregationOptions);
}

/** The spec part: options with defaults, quorum of 2, at most 10 clients. */
export const float64Spec: AggregationSpecDefinition<Options> = {
  name: MODE,
  options: OptionsSchema,
  defaultMinClients: 2,
  rules: (s) => (s.maxClients > 10 ? [{ path: ['maxClients'], message: 'x-float64 sums at most 10 clients' }] : []),
};

/** What the coordinator half accepted, per job (the test reads it). */
export const accepted = new Map<string, string[]>();

class Float64Sum implements UploadAggregator {
  readonly maxUpdateBytes: number;
  private readonly sum: Float64Array;
  private readonly clients: string[];
  constructor(
    private readonly context: CollectionContext,
    private readonly length: number,
  ) {
    this.maxUpdateBytes = 8 * length;
    this.sum = new Float64Array(length);
    this.clients = [];
    accepted.set(context.job.id, this.clients);
  }
  accept(clientId: string, payload: Uint8Array): void {
    if (payload.length !== this.maxUpdateBytes) {
      throw new TributaryError('VALIDATION_FAILED', `x-float64: expected ${this.maxUpdateBytes} bytes`);
    }
    const values = new Float64Array(payload.buffer.slice(payload.byteOffset, payload.byteOffset + payload.length));
    if (!values.every(Number.isFinite)) throw new TributaryError('CODEC_NON_FINITE', 'x-float64: non-finite value');
    for (let i = 0; i < values.length; i++) this.sum[i] += values[i];
    this.clients.push(clientId);
  }
  async reveal(): Promise<{ sum: AggregatedUpdates }> {
    const manifest = this.context.job.weightManifest;
    return {
      sum: {
        weightedDeltaSum: splitByManifest(this.sum, manifest),
        totalWeight: this.sum[this.length - 1],
        clientCount: this.clients.length,
      },
    };
  }
}

export const float64CoordinatorMode = (): CoordinatorAggregationMode => ({
  name: MODE,
  assertModelFits: () => undefined,
  parts: () => undefined,
  openCollection: (context): RoundCollection =>
    new UploadCollection(context, new Float64Sum(context, totalParameters(context.job.weightManifest) + 1), {
      modeName: MODE,
      keepMetrics: false,
    }),
});

export const float64ClientMode: ClientAggregationMode = {
  name: MODE,
  // Plain float64 uploads: the coordinator reads each update, so providers must allow plaintext.
  revealsUpdates: true,
  open: ({ joined, connection }) => ({
    async onTask(task, training) {
      const trained = await training;
      if (!trained) return;
      const weight = Math.min(trained.numExamples, optionsOf(joined.spec).maxExampleWeight);
      const values = new Float64Array(trained.delta.length + 1);
      for (let i = 0; i < trained.delta.length; i++) values[i] = weight * trained.delta[i];
      values[trained.delta.length] = weight;
      await connection.submitUpdate(task, new Uint8Array(values.buffer), 1, {});
    },
    close() {},
  }),
};
