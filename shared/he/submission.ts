import { createHash } from 'node:crypto';
import { TributaryError } from '../errors';
import type { Identity } from '../identity/keyPair';
import type { SignatureVerifier } from '../identity/signing';
import { Ed25519Signer } from '../secagg/signatures';

/**
 * A client's signed `he` submission: its Ed25519 identity signs the SHA-256 digest of the exact
 * ciphertext bytes it uploads, bound to (job, round, attempt) behind a domain tag of its own. The
 * signature travels in the upload itself (the last 64 bytes: ciphertexts ‖ signature), so the mode
 * needs nothing from the shared upload messages. The coordinator checks it on arrival and forwards
 * (client id, digest, signature) of every contribution in the decryption request; the key holder
 * verifies each one, so it decrypts only for contributors who really submitted to that round attempt.
 */
export const HE_SUBMISSION_DOMAIN = 'tributary/he/v1/submission';
export const SIGNATURE_BYTES = 64;

/** The round attempt a submission belongs to. */
export interface HeSubmissionRef {
  jobId: string;
  round: number;
  attempt: number;
}

/** SHA-256 hex of a client's ciphertext bytes. */
export function ciphertextDigest(ciphertexts: Uint8Array): string {
  return createHash('sha256').update(ciphertexts).digest('hex');
}

/** The bytes a client signs: a JSON array of the domain, job, round, attempt and ciphertext digest. */
export function heSubmissionBytes(ref: HeSubmissionRef, digest: string): Uint8Array {
  return Buffer.from(JSON.stringify([HE_SUBMISSION_DOMAIN, ref.jobId, ref.round, ref.attempt, digest]), 'utf8');
}

/** One node:crypto signer per identity object (building one parses and checks the key). */
const signers = new WeakMap<Identity, Ed25519Signer>();

/** An upload ready to send: ciphertexts ‖ signature, and the SHA-256 hex of all of it (the commit's `updateHash`). */
export interface SignedHeUpload {
  bytes: Uint8Array;
  uploadHash: string;
}

/**
 * The upload a client sends: its ciphertexts followed by its signature over them for `ref`, with the
 * upload's content hash. One SHA-256 pass over the ciphertexts gives both the signed digest and the
 * content hash (the hash state after the ciphertexts is copied, then fed the signature).
 */
export function signHeUpload(identity: Identity, ref: HeSubmissionRef, ciphertexts: Uint8Array): SignedHeUpload {
  // node:crypto (the same deterministic Ed25519 signature as tweetnacl's, ~100x faster).
  let signer = signers.get(identity);
  if (!signer) signers.set(identity, (signer = new Ed25519Signer(identity)));
  const hash = createHash('sha256').update(ciphertexts);
  const digest = hash.copy().digest('hex');
  const signature = Buffer.from(signer.sign(heSubmissionBytes(ref, digest)), 'hex');
  const bytes = new Uint8Array(ciphertexts.length + SIGNATURE_BYTES);
  bytes.set(ciphertexts);
  bytes.set(signature, ciphertexts.length);
  return { bytes, uploadHash: hash.update(signature).digest('hex') };
}

/**
 * The two SHA-256 hex digests of an upload (ciphertexts ‖ signature) in one pass over its bytes:
 * `digest` of the ciphertexts (what the signature signs) and `uploadHash` of the whole upload (what
 * the commit names). The same values as ciphertextDigest(ciphertexts) and a hash of the whole upload.
 */
export function heUploadDigests(upload: Uint8Array): { digest: string; uploadHash: string } {
  const cut = Math.max(0, upload.length - SIGNATURE_BYTES);
  const hash = createHash('sha256').update(upload.subarray(0, cut));
  const digest = hash.copy().digest('hex');
  return { digest, uploadHash: hash.update(upload.subarray(cut)).digest('hex') };
}

/** A checked upload: its ciphertexts, their digest and the sender's signature (hex). */
export interface HeSubmission {
  ciphertexts: Uint8Array;
  digest: string;
  signature: string;
}

/**
 * Splits an upload into ciphertexts and signature and verifies the signature under `clientId` for
 * `ref`; HE_SUBMISSION_INVALID when it does not. Lengths are the caller's to check. `knownDigest`:
 * the ciphertexts' digest when the caller has just computed it over these very bytes
 * (heUploadDigests); otherwise it is computed here.
 */
export function openHeUpload(
  verifier: SignatureVerifier,
  clientId: string,
  ref: HeSubmissionRef,
  upload: Uint8Array,
  knownDigest?: string,
): HeSubmission {
  if (upload.length <= SIGNATURE_BYTES) {
    throw new TributaryError(
      'HE_SUBMISSION_INVALID',
      `An he upload ends with a ${SIGNATURE_BYTES}-byte signature; got ${upload.length} bytes in all.`,
    );
  }
  const ciphertexts = upload.subarray(0, upload.length - SIGNATURE_BYTES);
  const signature = Buffer.from(upload.subarray(upload.length - SIGNATURE_BYTES)).toString('hex');
  const digest = knownDigest ?? ciphertextDigest(ciphertexts);
  if (!verifyHeSubmission(verifier, clientId, ref, digest, signature)) {
    throw new TributaryError(
      'HE_SUBMISSION_INVALID',
      `The upload's signature does not verify under the sender's key for job ${ref.jobId} round ${ref.round} attempt ${ref.attempt}.`,
    );
  }
  return { ciphertexts, digest, signature };
}

/** Whether `signature` is `clientId`'s signature over the submission of `digest` for `ref`. */
export function verifyHeSubmission(
  verifier: SignatureVerifier,
  clientId: string,
  ref: HeSubmissionRef,
  digest: string,
  signature: string,
): boolean {
  return verifier.verifyBytes(clientId, heSubmissionBytes(ref, digest), signature);
}
