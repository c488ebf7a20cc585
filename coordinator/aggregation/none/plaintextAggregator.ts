import { decodeTensors, encodedByteLength } from '../../shared/codec/modelCodec';
import { type TensorManifestEntry, sizeOfShape } from '../../shared/codec/tensors';
import { TributaryError } from '../../shared/errors';
import type { AggregatedUpdates } from '../strategy/strategy';
import type { UpdateAggregator } from './updateAggregator';

/**
 * Aggregation mode `none`: each update is a codec-encoded delta, decoded in place (no copy) and
 * streamed into preallocated Float64 accumulators as Σ n_i·Δ_i. Validation (manifest, finiteness)
 * runs before the first accumulator write, so a bad update changes nothing.
 */
export class PlaintextAggregator implements UpdateAggregator {
  readonly mode = 'none' as const;
  readonly maxUpdateBytes: number;
  private readonly sums: Float64Array[];
  private readonly contributors = new Set<string>();
  private totalWeight = 0;
  /** Each client's n_i·Δ_i, kept only with `keepClientUpdates` (contribution scoring in plaintext mode). */
  private readonly perClient: Array<{ clientId: string; updates: AggregatedUpdates }> = [];

  constructor(
    private readonly manifest: readonly TensorManifestEntry[],
    private readonly options: { keepClientUpdates?: boolean } = {},
  ) {
    this.sums = manifest.map((t) => new Float64Array(sizeOfShape(t.shape)));
    // A plaintext delta has exactly the manifest's encoded size.
    this.maxUpdateBytes = encodedByteLength(manifest);
  }

  accept(clientId: string, payload: Uint8Array, numExamples: number): void {
    if (this.contributors.has(clientId)) {
      throw new TributaryError(
        'ROUND_DUPLICATE_UPDATE',
        `Client ${clientId.slice(0, 12)}… already contributed to this aggregate.`,
      );
    }
    if (!Number.isInteger(numExamples) || numExamples <= 0) {
      throw new TributaryError('VALIDATION_FAILED', `numExamples must be a positive integer, got ${numExamples}.`);
    }
    const tensors = decodeTensors(payload, { expected: this.manifest, requireFinite: true, zeroCopy: true });
    const own = this.options.keepClientUpdates
      ? this.manifest.map((t) => new Float64Array(sizeOfShape(t.shape)))
      : null;
    for (let t = 0; t < tensors.length; t++) {
      const sum = this.sums[t];
      const data = tensors[t].data;
      for (let j = 0; j < data.length; j++) sum[j] += numExamples * data[j];
      if (own) for (let j = 0; j < data.length; j++) own[t][j] = numExamples * data[j];
    }
    if (own)
      this.perClient.push({ clientId, updates: { weightedDeltaSum: own, totalWeight: numExamples, clientCount: 1 } });
    this.totalWeight += numExamples;
    this.contributors.add(clientId);
  }

  /** Each accepted client's own n_i·Δ_i (empty unless constructed with `keepClientUpdates`). Never persisted. */
  clientUpdates(): Array<{ clientId: string; updates: AggregatedUpdates }> {
    return [...this.perClient];
  }

  result(): AggregatedUpdates {
    return { weightedDeltaSum: this.sums, totalWeight: this.totalWeight, clientCount: this.contributors.size };
  }
}
