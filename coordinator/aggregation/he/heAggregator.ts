import { splitByManifest } from '../../../shared/codec/manifestVector';
import { totalParameters, type TensorManifestEntry } from '../../../shared/codec/tensors';
import { heSumErrorBound } from '../../../shared/he/quantize';
import { assertHonestSum } from '../honestSumBounds';
import { TributaryError } from '../../../shared/errors';
import {
  type CiphertextLayout,
  CiphertextSum,
  checkCiphertexts,
  ciphertextLayout,
  type HeSubmissionRef,
  heCiphertextCount,
  type HeVectorParams,
  heUploadDigests,
  openHeUpload,
  SIGNATURE_BYTES,
} from '../../../shared/he';
import type { SignatureVerifier } from '../../../shared/identity/signing';
import type { HeContribution } from '../../../shared/schemas/heMessages';
import type { AggregatedUpdates, UpdatePart } from '../../strategy/strategy';
import type { UploadAggregator } from '../uploads/uploadCollection';
import type { HeDecryption } from './heKeyHolders';

export interface HeAggregatorOptions {
  params: HeVectorParams;
  /** The job's maxExampleWeight: decrypted ratios are scaled back to examples with it. */
  maxExampleWeight: number;
  /** The round attempt this aggregate belongs to (uploads are signed for it). */
  ref: HeSubmissionRef;
  /** The clients selected for this attempt (the key holder is told). */
  selected: readonly string[];
  verifier: SignatureVerifier;
  /** Send every contribution's ciphertexts instead of their sum (the job's `he.keyHolderSums`, on by default). */
  keyHolderSums: boolean;
  /** Asks the key holder to decrypt (HeKeyHolders.decrypt with the timeout filled in). */
  decrypt: (request: HeDecryption) => Promise<Float32Array>;
}

/**
 * Aggregation mode `he` (coordinator half). Each update is ⌈(P + 1)/N⌉ BGV (or BFV) ciphertexts of the
 * client's delta scaled by its weight ratio, then the ratio itself, followed by the client's
 * signature over them for this round attempt (shared/he/submission.ts). `accept` checks the exact
 * length, the signature and every ciphertext's layout (shared/he/ciphertextBytes.ts); it never sees
 * a plaintext. Only with `keyHolderSums: false` does it add the ciphertexts into a running
 * homomorphic sum, the one the key holder then decrypts; by default the key holder adds the
 * contributions itself and a coordinator sum would go unused (a third of the coordinator's `he`
 * work per update, bench/README.md). `reveal` sends
 * every contribution's (client id, digest, signature) and the attempt's selection to the key holder,
 * then (`keyHolderSums`, the default) every contribution's ciphertexts, one message each, which the
 * key holder checks against their signed digests and adds itself, or (`keyHolderSums: false`) the
 * coordinator's sum, which the key holder has to trust. With keyHolderSums the coordinator keeps each
 * accepted contribution until the reveal: at most maxClients × one update's bytes per attempt. It and splits the decrypted sums into Σ ratio_i·Δ_i per tensor and Σ ratio_i, both
 * scaled back to examples by maxExampleWeight.
 */
export class HeAggregator implements UploadAggregator {
  readonly maxUpdateBytes: number;
  private readonly length: number;
  private readonly layout: CiphertextLayout;
  private readonly count: number;
  private readonly scratch: Uint32Array;
  /** The homomorphic sum, kept only without keyHolderSums. */
  private readonly sum: CiphertextSum | undefined;
  private readonly contributions: HeContribution[] = [];
  /** Each contribution's ciphertexts, kept only with keyHolderSums. */
  private readonly kept: Uint8Array[] = [];
  private readonly contributors = new Set<string>();
  /** The ciphertext digest uploadHash computed, for the bytes `accept` gets next (one SHA-256 pass per upload). */
  private hashed: { bytes: Uint8Array; digest: string } | undefined;

  constructor(
    private readonly manifest: readonly TensorManifestEntry[],
    private readonly options: HeAggregatorOptions,
  ) {
    const { set } = options.params;
    this.length = totalParameters(manifest) + 1;
    this.layout = ciphertextLayout(set);
    this.count = heCiphertextCount(set, this.length);
    this.scratch = new Uint32Array(2 * this.layout.coefficients);
    this.sum = options.keyHolderSums ? undefined : new CiphertextSum(this.layout, this.count);
    this.maxUpdateBytes = this.count * set.ciphertextBytes + SIGNATURE_BYTES;
  }

  /** The upload's content hash and, in the same pass, its ciphertexts' digest (kept for `accept`). */
  uploadHash(bytes: Uint8Array): string {
    const { digest, uploadHash } = heUploadDigests(bytes);
    this.hashed = { bytes, digest };
    return uploadHash;
  }

  accept(clientId: string, payload: Uint8Array, numExamples: number): void {
    // Reused only for the very bytes it was computed over (the upload collection calls the two in a row).
    const known = this.hashed?.bytes === payload ? this.hashed.digest : undefined;
    this.hashed = undefined;
    if (this.contributors.has(clientId)) {
      throw new TributaryError(
        'ROUND_DUPLICATE_UPDATE',
        `Client ${clientId.slice(0, 12)}… already contributed to this aggregate.`,
      );
    }
    if (numExamples !== 1) {
      throw new TributaryError(
        'VALIDATION_FAILED',
        `he updates commit numExamples 1 (the weight travels encrypted); got ${numExamples}.`,
      );
    }
    if (payload.length !== this.maxUpdateBytes) {
      throw new TributaryError(
        'HE_CIPHERTEXT_INVALID',
        `Expected ${this.count} ciphertexts and a signature (${this.maxUpdateBytes} bytes); got ${payload.length} bytes.`,
      );
    }
    // Refusals name no sender (`details.members`): the sum is left unchanged, and the client may
    // retry within the attempt, as paillier's length, range and signature refusals.
    const submission = openHeUpload(this.options.verifier, clientId, this.options.ref, payload, known);
    if (this.sum) this.sum.add(submission.ciphertexts);
    else {
      checkCiphertexts(this.layout, submission.ciphertexts, this.count, this.scratch);
      this.kept.push(submission.ciphertexts);
    }
    this.contributors.add(clientId);
    this.contributions.push({ clientId, digest: submission.digest, signature: submission.signature });
  }

  /** Has the key holder decrypt the sum and returns the sums in examples (see the class comment). */
  async reveal(): Promise<{ sum: AggregatedUpdates; parts?: UpdatePart[] }> {
    if (this.contributors.size === 0)
      throw new TributaryError('ROUND_QUORUM_NOT_MET', 'No encrypted update was accepted.');
    const { ref } = this.options;
    const sums = await this.options.decrypt({
      jobId: ref.jobId,
      round: ref.round,
      attempt: ref.attempt,
      length: this.length,
      selected: [...this.options.selected],
      contributions: [...this.contributions],
      ...(this.sum
        ? { form: 'sum' as const, ciphertexts: this.sum.toBytes() }
        : { form: 'contributions' as const, parts: [...this.kept] }),
    });
    if (sums.length !== this.length) {
      throw new TributaryError(
        'HE_DECRYPT_FAILED',
        `The key holder returned ${sums.length} sums; expected ${this.length}.`,
      );
    }
    // Bounded influence (issue 13): a sum no honest clients could produce (a hidden negative ratio,
    // values beyond ±c·ratio) is refused before any division by its weight; the key holder's own
    // range check is not relied on. The weight shares the values' quantisation and error bound.
    const clientCount = this.contributors.size;
    const error = heSumErrorBound(this.options.params, clientCount);
    assertHonestSum(
      sums,
      {
        contributors: clientCount,
        maxExampleWeight: this.options.maxExampleWeight,
        clipRange: this.options.params.clipRange,
        weightError: error,
        valueError: error,
      },
      { label: 'the he aggregate' },
    );
    const ratioSum = sums[this.length - 1];
    const scale = this.options.maxExampleWeight;
    const weightedDeltaSum = splitByManifest(sums, this.manifest);
    for (const t of weightedDeltaSum) for (let j = 0; j < t.length; j++) t[j] *= scale;
    return { sum: { weightedDeltaSum, totalWeight: ratioSum * scale, clientCount } };
  }
}
