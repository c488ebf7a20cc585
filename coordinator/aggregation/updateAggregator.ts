import type { TensorManifestEntry } from '../../shared/codec/tensors';
import type { AggregationMode } from '../../shared/schemas/jobSpec';
import type { AggregatedUpdates } from '../strategy/strategy';

/**
 * The coordinator half of an aggregation mode (the seam secure aggregation plugs into).
 * `accept` must validate the whole payload before changing any state: a rejected update leaves the
 * aggregate exactly as it was. `result` yields only sums.
 *
 * A mode whose sums are computed elsewhere (`paillier`: the key holder decrypts them) implements
 * `finish`; the round runner awaits it instead of calling `result` when it is present.
 */
export interface UpdateAggregator {
  readonly mode: AggregationMode;
  /** Upper bound on one encoded update, in bytes, so uploads are bounded before allocation. */
  readonly maxUpdateBytes: number;
  accept(clientId: string, payload: Uint8Array, numExamples: number): void;
  result(): AggregatedUpdates;
  /** The sums, when producing them needs asynchronous work (a remote decryption). Rejects with a coded error. */
  finish?(): Promise<AggregatedUpdates>;
  /** Plaintext modes that were asked to keep them (contribution scoring): each accepted client's own n_i·Δ_i. */
  clientUpdates?(): Array<{ clientId: string; updates: AggregatedUpdates }>;
}

/** Which round attempt an aggregator serves. */
export interface AggregationContext {
  round: number;
  attempt: number;
}

export type UpdateAggregatorFactory = (
  manifest: readonly TensorManifestEntry[],
  context?: AggregationContext,
) => UpdateAggregator;
