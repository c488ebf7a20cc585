import { PublicKey } from 'paillier-bigint';
import { totalParameters, type TensorManifestEntry } from '../../../shared/codec/tensors';
import { TributaryError } from '../../../shared/errors';
import {
  ciphertextCount,
  ciphertextWidth,
  ciphertextsFromBytes,
  ciphertextsToBytes,
  type PackedPaillierParams,
  sumErrorBound,
} from '../../../shared/paillier';
import type { AggregatedUpdates, UpdatePart } from '../../strategy/strategy';
import type { UploadAggregator } from '../uploads/uploadCollection';
import { splitByManifest } from '../../../shared/codec/manifestVector';
import { assertHonestSum } from '../honestSumBounds';

export interface PaillierAggregatorOptions {
  params: PackedPaillierParams;
  /** The job's public modulus n (g = n + 1). */
  n: bigint;
  /** The job's maxExampleWeight: decrypted ratios are scaled back to examples with it. */
  maxExampleWeight: number;
  /** Asks the key holder to decrypt the product (KeyHolderRegistry.decrypt with the round attempt filled in). */
  decrypt: (aggregate: { ciphertexts: Uint8Array; clientCount: number; length: number }) => Promise<Float32Array>;
}

/**
 * Aggregation mode `paillier` (coordinator half). Each update is ciphertextCount(P + 1) fixed-width
 * Paillier ciphertexts: the client's delta scaled by its weight ratio, then the ratio itself, packed
 * and encrypted under the key holder's public key. `accept` checks the exact length and that every
 * ciphertext is in [1, n²) before multiplying it into the running product mod n² (the homomorphic
 * sum); it never sees a plaintext. `reveal` sends the product to the key holder, refuses decrypted
 * sums no honest clients could produce (honestSumBounds.ts; one aggregate, so no one is named) and
 * splits them into Σ ratio_i·Δ_i per tensor and Σ ratio_i.
 *
 * Not checked (too costly per update): that a ciphertext is coprime with n. A non-coprime value would
 * reveal a factor of n to whoever sent it, which the client could compute anyway only by factoring.
 */
export class PaillierAggregator implements UploadAggregator {
  readonly maxUpdateBytes: number;
  private readonly length: number;
  private readonly count: number;
  private readonly width: number;
  private readonly n2: bigint;
  private product: bigint[] | null = null;
  private readonly contributors = new Set<string>();

  constructor(
    private readonly manifest: readonly TensorManifestEntry[],
    private readonly options: PaillierAggregatorOptions,
  ) {
    const publicKey = new PublicKey(options.n, options.n + 1n);
    this.n2 = publicKey._n2;
    this.length = totalParameters(manifest) + 1;
    this.count = ciphertextCount(options.params, this.length);
    this.width = ciphertextWidth(options.n);
    this.maxUpdateBytes = this.count * this.width;
  }

  accept(clientId: string, payload: Uint8Array, numExamples: number): void {
    if (this.contributors.has(clientId)) {
      throw new TributaryError(
        'ROUND_DUPLICATE_UPDATE',
        `Client ${clientId.slice(0, 12)}… already contributed to this aggregate.`,
      );
    }
    if (numExamples !== 1) {
      throw new TributaryError(
        'VALIDATION_FAILED',
        `paillier updates commit numExamples 1 (the weight travels encrypted); got ${numExamples}.`,
      );
    }
    const ciphertexts = ciphertextsFromBytes(payload, this.width, { count: this.count, modulus: this.n2 });
    const product = this.product;
    if (!product) this.product = ciphertexts;
    else for (let i = 0; i < product.length; i++) product[i] = (product[i] * ciphertexts[i]) % this.n2;
    this.contributors.add(clientId);
  }

  /**
   * Has the key holder decrypt the product and returns the sums in examples: the decrypted vector is
   * Σ ratio_i·Δ_i and Σ ratio_i with ratio_i = w_i / maxExampleWeight, so both scale by maxExampleWeight.
   */
  async reveal(): Promise<{ sum: AggregatedUpdates; parts?: UpdatePart[] }> {
    if (!this.product) throw new TributaryError('ROUND_QUORUM_NOT_MET', 'No encrypted update was accepted.');
    const sums = await this.options.decrypt({
      ciphertexts: ciphertextsToBytes(this.product, this.width),
      clientCount: this.contributors.size,
      length: this.length,
    });
    if (sums.length !== this.length) {
      throw new TributaryError(
        'PAILLIER_DECRYPT_FAILED',
        `The key holder returned ${sums.length} sums; expected ${this.length}.`,
      );
    }
    // Bounded influence: a sum no honest clients could produce (a negative ratio or out-of-range
    // values inside someone's ciphertexts) is refused before any division by its weight. The weight
    // shares the values' quantisation, so both carry the same error bound.
    const n = this.contributors.size;
    const error = sumErrorBound(this.options.params, n);
    assertHonestSum(
      sums,
      {
        contributors: n,
        maxExampleWeight: this.options.maxExampleWeight,
        clipRange: this.options.params.clipRange,
        weightError: error,
        valueError: error,
      },
      { label: 'the Paillier aggregate' },
    );
    const ratioSum = sums[this.length - 1];
    const scale = this.options.maxExampleWeight;
    const weightedDeltaSum = splitByManifest(sums, this.manifest);
    for (const t of weightedDeltaSum) for (let j = 0; j < t.length; j++) t[j] *= scale;
    return { sum: { weightedDeltaSum, totalWeight: ratioSum * scale, clientCount: this.contributors.size } };
  }
}
