import nacl from 'tweetnacl';
import { generateIdentity } from '../identity/keyPair';
import { SignatureVerifier, signFields, signingBytes } from '../identity/signing';
import {
  PAILLIER_SUBMISSION_DOMAIN,
  ciphertextDigest,
  signSubmission,
  submissionSigningBytes,
  verifySubmission,
} from './submission';

describe('paillier submission signatures', () => {
  const identity = generateIdentity();
  const verifier = new SignatureVerifier();
  const ref = { jobId: 'job1', round: 3, attempt: 1 };
  const bytes = Uint8Array.from([1, 2, 3, 4, 5]);
  const signature = signSubmission(identity, ref, bytes);
  const digest = ciphertextDigest(bytes);

  it('is an Ed25519 signature over the domain-tagged (job, round, attempt, SHA-256) that verifies under the client id', () => {
    expect(digest).toBe('74f81fe167d99b4cb41d6d0ccda82278caee9f3e2f25d5e5a3936ff3dcec60d0');
    const signed = submissionSigningBytes(ref, digest);
    expect(JSON.parse(Buffer.from(signed).toString('utf8'))).toEqual([
      PAILLIER_SUBMISSION_DOMAIN,
      'job1',
      3,
      1,
      digest,
    ]);
    expect(nacl.sign.detached.verify(signed, Buffer.from(signature, 'hex'), identity.publicKey)).toBe(true);
    expect(verifySubmission(verifier, identity.clientId, ref, digest, signature)).toBe(true);
  });

  it.each([
    ['job', { ...ref, jobId: 'job2' }, digest],
    ['round', { ...ref, round: 4 }, digest],
    ['attempt', { ...ref, attempt: 0 }, digest],
    ['ciphertexts', ref, ciphertextDigest(Uint8Array.from([1, 2, 3, 4, 6]))],
  ])('does not verify for another %s', (_what, otherRef, otherDigest) => {
    expect(verifySubmission(verifier, identity.clientId, otherRef, otherDigest, signature)).toBe(false);
  });

  it('does not verify under another client id, and is no message signature (domain separation)', () => {
    expect(verifySubmission(verifier, generateIdentity().clientId, ref, digest, signature)).toBe(false);
    // A message signature over the same fields is not a submission signature, nor the other way round.
    const fields = { jobId: 'job1', round: 3, stage: 'update-commit', payloadHash: digest, nonce: '00'.repeat(16) };
    expect(verifySubmission(verifier, identity.clientId, ref, digest, signFields(identity.secretKey, fields))).toBe(
      false,
    );
    expect(verifier.verifyBytes(identity.clientId, signingBytes(fields), signature)).toBe(false);
  });
});
