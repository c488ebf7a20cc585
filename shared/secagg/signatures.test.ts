import nacl from 'tweetnacl';
import { generateIdentity } from '../identity/keyPair';
import { SignatureVerifier } from '../identity/signing';
import { generateKeyPair } from './keys';
import { parseSecAggRoundId, secaggRoundId } from './roundId';
import { advertisedKeysBytes, Ed25519Signer, type SetupView, setupDigest, survivorSetBytes } from './signatures';

describe('SecAgg+ signatures', () => {
  const identity = generateIdentity();
  const signer = new Ed25519Signer(identity);
  const verifier = new SignatureVerifier();
  const setup: SetupView = {
    roundId: 'job1:3:0',
    params: {
      vectorLength: 10,
      neighbourCount: 4,
      threshold: 3,
      clippingRange: 8,
      quantizationRange: 2 ** 22,
      modulus: 2 ** 32,
      graphSeed: 'g',
    },
    clientIds: ['c', 'a', 'b'],
  };

  it('node:crypto signatures are the identity signatures tweetnacl makes, and verify under the client id', () => {
    const bytes = survivorSetBytes('job1:3:0', setupDigest(setup), ['a', 'b']);
    const sig = signer.sign(bytes);
    expect(sig).toBe(Buffer.from(nacl.sign.detached(bytes, identity.secretKey)).toString('hex'));
    expect(verifier.verifyBytes(identity.clientId, bytes, sig)).toBe(true);
    expect(verifier.verifyBytes(generateIdentity().clientId, bytes, sig)).toBe(false);
  });

  it('refuses an identity whose client id or secret key does not match its public key', () => {
    const other = generateIdentity();
    expect(() => new Ed25519Signer({ ...identity, clientId: other.clientId })).toThrow(/client id/);
    const mixed = new Uint8Array(64);
    mixed.set(other.secretKey.subarray(0, 32));
    mixed.set(identity.publicKey, 32);
    expect(() => new Ed25519Signer({ ...identity, secretKey: mixed })).toThrow(/does not match/);
  });

  it('a key signature binds the round id, the setup, the client id and both keys', () => {
    const enc = generateKeyPair().publicKey;
    const mask = generateKeyPair().publicKey;
    const digest = setupDigest(setup);
    const sig = signer.sign(advertisedKeysBytes('job1:3:0', digest, identity.clientId, enc, mask));
    const ok = (bytes: Uint8Array) => verifier.verifyBytes(identity.clientId, bytes, sig);
    expect(ok(advertisedKeysBytes('job1:3:0', digest, identity.clientId, enc, mask))).toBe(true);
    expect(ok(advertisedKeysBytes('job1:3:1', digest, identity.clientId, enc, mask))).toBe(false);
    expect(
      ok(
        advertisedKeysBytes('job1:3:0', setupDigest({ ...setup, clientIds: ['a', 'b'] }), identity.clientId, enc, mask),
      ),
    ).toBe(false);
    expect(ok(advertisedKeysBytes('job1:3:0', digest, 'f'.repeat(64), enc, mask))).toBe(false);
    expect(ok(advertisedKeysBytes('job1:3:0', digest, identity.clientId, mask, enc))).toBe(false);
    expect(ok(advertisedKeysBytes('job1:3:0', digest, identity.clientId, enc, generateKeyPair().publicKey))).toBe(
      false,
    );
    // Domain separation: a key signature is never a survivor-set signature.
    expect(ok(survivorSetBytes('job1:3:0', digest, [identity.clientId]))).toBe(false);
  });

  it('the setup digest ignores client order but changes with every parameter and member', () => {
    const d = setupDigest(setup);
    expect(setupDigest({ ...setup, clientIds: ['b', 'c', 'a'] })).toBe(d);
    for (const [field, value] of Object.entries({
      vectorLength: 11,
      neighbourCount: 2,
      threshold: 2,
      clippingRange: 4,
      quantizationRange: 2 ** 20,
      modulus: 2 ** 31,
      graphSeed: 'h',
    })) {
      expect(setupDigest({ ...setup, params: { ...setup.params, [field]: value } })).not.toBe(d);
    }
    expect(setupDigest({ ...setup, clientIds: ['a', 'b', 'd'] })).not.toBe(d);
    expect(setupDigest({ ...setup, roundId: 'job1:3:1' })).not.toBe(d);
  });

  it('survivor-set bytes are canonical (sorted) and bound to the round and setup', () => {
    const digest = setupDigest(setup);
    expect(survivorSetBytes('job1:3:0', digest, ['b', 'a'])).toEqual(survivorSetBytes('job1:3:0', digest, ['a', 'b']));
    expect(survivorSetBytes('job1:3:0', digest, ['a'])).not.toEqual(survivorSetBytes('job1:3:0', digest, ['a', 'b']));
    expect(survivorSetBytes('job1:3:1', digest, ['a'])).not.toEqual(survivorSetBytes('job1:3:0', digest, ['a']));
  });
});

describe('SecAgg+ round ids', () => {
  it('format and parse job, round, attempt and cohort', () => {
    expect(secaggRoundId({ jobId: 'job_1', round: 12, attempt: 0 })).toBe('job_1:12:0');
    expect(secaggRoundId({ jobId: 'j', round: 1, attempt: 2, cohort: 3 })).toBe('j:1:2:c3');
    expect(parseSecAggRoundId('j:1:2:c3')).toEqual({ jobId: 'j', round: 1, attempt: 2, cohort: 3 });
    expect(parseSecAggRoundId('j:1:2')).toEqual({ jobId: 'j', round: 1, attempt: 2 });
    for (const bad of ['j:1', 'j:01:2', 'j:1:2:3', 'j:1:2:c', 'j:x:2', 'j k:1:2', ':1:2', 'j:1:2:c1:c2'])
      expect(parseSecAggRoundId(bad)).toBeNull();
    expect(() => secaggRoundId({ jobId: 'a:b', round: 1, attempt: 0 })).toThrow(/job id/);
    expect(() => secaggRoundId({ jobId: 'a', round: -1, attempt: 0 })).toThrow(/round/);
  });
});
