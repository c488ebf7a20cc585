/**
 * How a transcript is serialised, hashed and signed. The bytes are the RFC 8785 (JCS) canonical JSON
 * of the transcript object (contracts/escrowBinding.ts `canonicalJson`, the same form the spec hash
 * uses), UTF-8 encoded: key order, number text and string escaping are fixed, so whoever holds the
 * transcript as parsed JSON rebuilds the exact bytes that were signed. The hash is SHA-256 of those
 * bytes (what the chain commits as the round's `transcriptHash`); the signature is Ed25519 (RFC 8032)
 * over the same bytes. The transcript's `type` field is inside them, so a signature over one kind of
 * transcript is never valid as another, nor as any other Tributary signature (those sign JSON arrays
 * that start with their own domain tag).
 */
import { createHash } from 'node:crypto';
import { canonicalJson } from '../../contracts/escrowBinding';
import type { Identity } from '../../shared/identity/keyPair';
import { SignatureVerifier, signBytes } from '../../shared/identity/signing';

/**
 * A JSON value rebuilt in this realm: canonicalJson accepts only plain objects of this realm's
 * Object.prototype, and a value parsed elsewhere (fetch's JSON, another vm context) has another.
 * Lossless for anything that came from JSON text.
 */
export function ownRealmJson(value: unknown): unknown {
  return value === undefined ? undefined : JSON.parse(JSON.stringify(value));
}

/** The canonical bytes of a transcript as received (any JSON value; throws for values JSON cannot hold). */
export function transcriptBytes(transcript: unknown): Buffer {
  return Buffer.from(canonicalJson(ownRealmJson(transcript)), 'utf8');
}

/** SHA-256 (64 lowercase hex digits) of a transcript's canonical bytes. */
export function transcriptHash(transcript: unknown): string {
  return createHash('sha256').update(transcriptBytes(transcript)).digest('hex');
}

/** A signed transcript: the canonical text that was signed, its hash and the signature. */
export interface SignedTranscript {
  /** The canonical JSON text (what is stored, verbatim). */
  text: string;
  hash: string;
  /** Ed25519 signature over the UTF-8 bytes of `text`, hex. */
  signature: string;
  /** The signing key (hex), also named in the transcript as `coordinatorKey`. */
  signer: string;
}

/** Signs a transcript with the coordinator's key; `transcript.coordinatorKey` must be that key. */
export function signTranscript(identity: Identity, transcript: { coordinatorKey: string }): SignedTranscript {
  if (transcript.coordinatorKey !== identity.clientId) {
    throw new Error(`the transcript names key ${transcript.coordinatorKey}; signing key is ${identity.clientId}`);
  }
  const text = canonicalJson(transcript);
  const bytes = Buffer.from(text, 'utf8');
  return {
    text,
    hash: createHash('sha256').update(bytes).digest('hex'),
    signature: signBytes(identity.secretKey, bytes),
    signer: identity.clientId,
  };
}

const verifier = new SignatureVerifier(1_000);

/**
 * Whether `signature` is `publicKey`'s Ed25519 signature over the canonical bytes of `transcript`
 * (as received, before any schema strips or fills a field). Never throws.
 */
export function verifyTranscriptSignature(transcript: unknown, publicKey: string, signature: string): boolean {
  let bytes: Buffer;
  try {
    bytes = transcriptBytes(transcript);
  } catch {
    return false;
  }
  return verifier.verifyBytes(publicKey, bytes, signature);
}
