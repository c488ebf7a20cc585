import { createHash } from 'node:crypto';
import type { Identity } from '../identity/keyPair';
import { signBytes, type SignatureVerifier } from '../identity/signing';

/**
 * A client's signed `paillier` submission: its Ed25519 identity signs the SHA-256 digest of the
 * exact ciphertext bytes it uploads, bound to (job, round, attempt) behind a domain tag of its own.
 * The coordinator checks the signature at upload and keeps it; the key holder receives every
 * contributor's ciphertexts with their signatures and checks them again before it decrypts, so a
 * coordinator can neither forge a contribution nor move one into another round or attempt.
 */
export const PAILLIER_SUBMISSION_DOMAIN = 'tributary/paillier/v1/submission';

/** The round attempt a submission belongs to. */
export interface SubmissionRef {
  jobId: string;
  round: number;
  attempt: number;
}

/** SHA-256 hex of a client's ciphertext bytes (the upload's `updateHash`, the same function). */
export function ciphertextDigest(ciphertexts: Uint8Array): string {
  return createHash('sha256').update(ciphertexts).digest('hex');
}

/** The bytes a client signs: a JSON array of the domain, job, round, attempt and ciphertext digest. */
export function submissionSigningBytes(ref: SubmissionRef, digest: string): Uint8Array {
  return Buffer.from(JSON.stringify([PAILLIER_SUBMISSION_DOMAIN, ref.jobId, ref.round, ref.attempt, digest]), 'utf8');
}

/** Signs the ciphertext bytes a client is about to upload for `ref`. Returns the signature as hex. */
export function signSubmission(identity: Identity, ref: SubmissionRef, ciphertexts: Uint8Array): string {
  return signBytes(identity.secretKey, submissionSigningBytes(ref, ciphertextDigest(ciphertexts)));
}

/** Whether `signature` is `clientId`'s signature over the submission of `digest` for `ref`. */
export function verifySubmission(
  verifier: SignatureVerifier,
  clientId: string,
  ref: SubmissionRef,
  digest: string,
  signature: string,
): boolean {
  return verifier.verifyBytes(clientId, submissionSigningBytes(ref, digest), signature);
}
