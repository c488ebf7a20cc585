import { UNCLIPPED_METRIC } from '../../../shared/aggregation/privateUpdate';
import { decodeTensors, encodedByteLength } from '../../../shared/codec/modelCodec';
import { sizeOfShape, type TensorManifestEntry } from '../../../shared/codec/tensors';
import { TributaryError } from '../../../shared/errors';
import type { UpdateCommitBody } from '../../../shared/schemas/messages';
import type { AggregatedUpdates, UpdatePart } from '../../strategy/strategy';
import type { RevealedPrivacy } from '../aggregationMode';
import type { UploadAggregator } from '../uploads/uploadCollection';

/**
 * Aggregation mode `none` (coordinator half): each update is a codec-encoded delta, decoded in place
 * (no copy) and streamed into preallocated Float64 accumulators as Σ w_i·Δ_i, with the client's weight
 * w_i = min(numExamples, maxExampleWeight) — the same cap the private modes apply, so a declared
 * example count buys at most maxExampleWeight of influence. Validation (manifest, finiteness) runs
 * before the first accumulator write, so a bad update changes nothing.
 *
 * Under DP (`privacy`: the round's clipping norm C) every client weighs 1 and the coordinator clips
 * each update to C again itself (it sees them all, and a client that skipped clipping must not move
 * the sum by more than C, the sensitivity the noise is sized for); an update counts as unclipped only
 * when its client's commit says so (metric `unclipped` = 1) and it needed no clipping here.
 */
export class PlaintextAggregator implements UploadAggregator {
  readonly maxUpdateBytes: number;
  private readonly sums: Float64Array[];
  private readonly contributors = new Set<string>();
  private totalWeight = 0;
  private unclipped = 0;
  /** Each client's w_i·Δ_i, kept only with `keepClientUpdates` (robust rules, contribution scoring). */
  private readonly perClient: UpdatePart[] = [];

  constructor(
    private readonly manifest: readonly TensorManifestEntry[],
    private readonly options: {
      maxExampleWeight: number;
      keepClientUpdates?: boolean;
      /** Jobs with a `privacy` block: the round's clipping norm C. */
      privacy?: { clippingNorm: number };
    },
  ) {
    this.sums = manifest.map((t) => new Float64Array(sizeOfShape(t.shape)));
    // A plaintext delta has exactly the manifest's encoded size.
    this.maxUpdateBytes = encodedByteLength(manifest);
  }

  accept(clientId: string, payload: Uint8Array, numExamples: number, commit?: UpdateCommitBody): void {
    const metrics = commit?.metrics ?? {};
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
    const privacy = this.options.privacy;
    // Δ_i enters the sum as factor · Δ_i and the client adds `weight` to totalWeight: w_i both times,
    // or under DP the clipping factor of clipToNorm (shared/privacy/clipping.ts: at most C) and 1.
    let weight = Math.min(numExamples, this.options.maxExampleWeight);
    let factor = weight;
    let clippedHere = false;
    if (privacy) {
      let squares = 0;
      for (const t of tensors) for (let j = 0; j < t.data.length; j++) squares += t.data[j] * t.data[j];
      const norm = Math.sqrt(squares);
      clippedHere = norm > privacy.clippingNorm;
      factor = clippedHere ? (privacy.clippingNorm * (1 - 1e-6)) / norm : 1;
      weight = 1;
    }
    const own = this.options.keepClientUpdates
      ? this.manifest.map((t) => new Float64Array(sizeOfShape(t.shape)))
      : null;
    for (let t = 0; t < tensors.length; t++) {
      const sum = this.sums[t];
      const data = tensors[t].data;
      for (let j = 0; j < data.length; j++) sum[j] += factor * data[j];
      if (own) for (let j = 0; j < data.length; j++) own[t][j] = factor * data[j];
    }
    if (own) {
      this.perClient.push({
        members: [clientId],
        updates: { weightedDeltaSum: own, totalWeight: weight, clientCount: 1 },
      });
    }
    this.totalWeight += weight;
    if (privacy && !clippedHere && metrics[UNCLIPPED_METRIC] === 1) this.unclipped++;
    this.contributors.add(clientId);
  }

  result(): AggregatedUpdates {
    return { weightedDeltaSum: this.sums, totalWeight: this.totalWeight, clientCount: this.contributors.size };
  }

  /** Each accepted client's own w_i·Δ_i (empty unless constructed with `keepClientUpdates`). Never persisted. */
  clientUpdates(): UpdatePart[] {
    return [...this.perClient];
  }

  async reveal(): Promise<{ sum: AggregatedUpdates; parts?: UpdatePart[]; privacy?: RevealedPrivacy }> {
    if (this.contributors.size === 0) throw new TributaryError('ROUND_QUORUM_NOT_MET', 'No update was accepted.');
    return {
      sum: this.result(),
      ...(this.perClient.length > 0 ? { parts: this.clientUpdates() } : {}),
      ...(this.options.privacy ? { privacy: { unclippedCount: this.unclipped, noised: false } } : {}),
    };
  }
}
