import { PublicKey } from 'paillier-bigint';
import { splitByManifest } from '../../../shared/codec/manifestVector';
import { totalParameters, type TensorManifestEntry } from '../../../shared/codec/tensors';
import { TributaryError } from '../../../shared/errors';
import type { SignatureVerifier } from '../../../shared/identity/signing';
import {
  ciphertextCount,
  ciphertextDigest,
  ciphertextWidth,
  ciphertextsFromBytes,
  firstNonUnit,
  type PackedPaillierParams,
  type SubmissionRef,
  verifySubmission,
} from '../../../shared/paillier';
import type { UpdateCommitBody } from '../../../shared/schemas/messages';
import type { AggregatedUpdates, UpdatePart } from '../../strategy/strategy';
import type { RevealedPrivacy } from '../aggregationMode';
import type { UploadAggregator } from '../uploads/uploadCollection';

/** One accepted encrypted update: who sent it, its signature over the submission, the ciphertext bytes. */
export interface PaillierContribution {
  clientId: string;
  signature: string;
  ciphertexts: Uint8Array;
}

export interface PaillierAggregatorOptions {
  params: PackedPaillierParams;
  /** The job's public modulus n (g = n + 1). */
  n: bigint;
  /** The job's maxExampleWeight: decrypted ratios are scaled back to examples with it. */
  maxExampleWeight: number;
  /** The round attempt every submission must be signed for. */
  ref: SubmissionRef;
  verifier: SignatureVerifier;
  /**
   * Asks the key holder to decrypt the sum of the contributions (KeyHolderRegistry.decrypt with the
   * round attempt and its selection filled in); resolves with the Float32 sums.
   */
  decrypt: (aggregate: { length: number; contributions: readonly PaillierContribution[] }) => Promise<Float32Array>;
  /**
   * Jobs with a `privacy` block (central noise): each client encrypts its clipped delta and, in the
   * weight slot, its unclipped bit (shared/aggregation/privateUpdate.ts); every client weighs 1.
   */
  privacy?: boolean;
}

/**
 * Aggregation mode `paillier` (coordinator half). Each update is ciphertextCount(P + 1) fixed-width
 * Paillier ciphertexts: the client's delta scaled by its weight ratio, then the ratio itself, packed
 * and encrypted under the key holder's public key, with the client's Ed25519 signature over the
 * SHA-256 of those bytes bound to (job, round, attempt) (shared/paillier/submission.ts).
 *
 * `accept` checks, before keeping anything: the exact length, every ciphertext in [1, n²)
 * (PAILLIER_CIPHERTEXT_INVALID, the client may retry), the submission signature
 * (PAILLIER_SUBMISSION_INVALID, may retry), and that every ciphertext is a unit mod n
 * (PAILLIER_CIPHERTEXT_INVALID naming the sender in `details.members`: no honest encryption is a
 * non-unit, so the sender is dropped from the attempt and left out of its retry). The aggregate is
 * therefore never spoiled. `reveal` sends every contribution, signature included, to the key
 * holder, which verifies them and multiplies them itself (client/keyHolder.ts), and splits the
 * decrypted sums into Σ ratio_i·Δ_i per tensor and Σ ratio_i.
 *
 * Cost: the coordinator holds every accepted update until reveal (clients × ciphertext bytes, which
 * job creation bounds by MAX_DECRYPT_REQUEST_BYTES) and sends all of it to the key holder.
 */
export class PaillierAggregator implements UploadAggregator {
  readonly maxUpdateBytes: number;
  private readonly length: number;
  private readonly count: number;
  private readonly width: number;
  private readonly n2: bigint;
  private readonly contributions: PaillierContribution[] = [];
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

  accept(clientId: string, payload: Uint8Array, numExamples: number, commit?: UpdateCommitBody): void {
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
    const signature = commit?.submissionSignature;
    const { ref } = this.options;
    if (!signature || !verifySubmission(this.options.verifier, clientId, ref, ciphertextDigest(payload), signature)) {
      throw new TributaryError(
        'PAILLIER_SUBMISSION_INVALID',
        `Expected update:commit to carry submissionSignature, the client's signature over the SHA-256 of the ciphertexts for job ${ref.jobId} round ${ref.round} attempt ${ref.attempt}; ${signature ? 'it does not verify' : 'it has none'}.`,
      );
    }
    const index = firstNonUnit(ciphertexts, this.options.n);
    if (index !== null) {
      throw new TributaryError(
        'PAILLIER_CIPHERTEXT_INVALID',
        `paillier: ciphertext ${index} shares a factor with n (gcd(c, n) != 1; c = n is one such value): no encryption produces it. Client ${clientId.slice(0, 12)}… is left out of this attempt and its retry.`,
        { details: { members: [clientId], index } },
      );
    }
    this.contributions.push({ clientId, signature, ciphertexts: payload });
    this.contributors.add(clientId);
  }

  /**
   * Has the key holder decrypt the sum and returns it in examples: the decrypted vector is
   * Σ ratio_i·Δ_i and Σ ratio_i with ratio_i = w_i / maxExampleWeight, so both scale by maxExampleWeight.
   */
  async reveal(): Promise<{ sum: AggregatedUpdates; parts?: UpdatePart[]; privacy?: RevealedPrivacy }> {
    if (this.contributions.length === 0) {
      throw new TributaryError('ROUND_QUORUM_NOT_MET', 'No encrypted update was accepted.');
    }
    const sums = await this.options.decrypt({ length: this.length, contributions: this.contributions });
    if (sums.length !== this.length) {
      throw new TributaryError(
        'PAILLIER_DECRYPT_FAILED',
        `The key holder returned ${sums.length} sums; expected ${this.length}.`,
      );
    }
    const clientCount = this.contributors.size;
    if (this.options.privacy) {
      // Under DP the last value is the count of unclipped updates; every client weighs 1.
      const weightedDeltaSum = splitByManifest(sums, this.manifest);
      return {
        sum: { weightedDeltaSum, totalWeight: clientCount, clientCount },
        privacy: { unclippedCount: sums[this.length - 1], noised: false },
      };
    }
    const ratioSum = sums[this.length - 1];
    if (!(ratioSum > 0)) {
      throw new TributaryError(
        'PAILLIER_DECRYPT_FAILED',
        `The decrypted sum of the clients' weights is ${ratioSum}, not positive.`,
      );
    }
    const scale = this.options.maxExampleWeight;
    const weightedDeltaSum = splitByManifest(sums, this.manifest);
    for (const t of weightedDeltaSum) for (let j = 0; j < t.length; j++) t[j] *= scale;
    return { sum: { weightedDeltaSum, totalWeight: ratioSum * scale, clientCount } };
  }
}
