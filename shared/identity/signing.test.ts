import nacl from 'tweetnacl';
import { generateIdentity } from './keyPair';
import { NonceCache } from './nonceCache';
import { SignatureVerifier, type SignedFields, newNonce, payloadHash, signBytes, signFields } from './signing';

describe('message signing', () => {
  const id = generateIdentity();
  const fields: SignedFields = {
    jobId: 'job1',
    round: 3,
    stage: 'update-commit',
    payloadHash: payloadHash('{"a":1}'),
    nonce: newNonce(),
  };
  const verifier = new SignatureVerifier();

  it('tweetnacl signatures verify under node:crypto', () => {
    const sig = signFields(id.secretKey, fields);
    expect(verifier.verify(id.clientId, fields, sig)).toBe(true);
    // and the other way round, tweetnacl agrees
    expect(
      nacl.sign.detached.verify(
        Buffer.from(JSON.stringify(['tributary/msg/v1', 'job1', 3, 'update-commit', fields.payloadHash, fields.nonce])),
        Buffer.from(sig, 'hex'),
        id.publicKey,
      ),
    ).toBe(true);
  });

  it('signs exactly as tweetnacl does (Ed25519 is deterministic), for any message', () => {
    for (const message of [new Uint8Array(0), new Uint8Array([1, 2, 3]), nacl.randomBytes(1000)]) {
      const other = generateIdentity();
      const expected = Buffer.from(nacl.sign.detached(message, other.secretKey)).toString('hex');
      expect(signBytes(other.secretKey, message)).toBe(expected);
    }
    expect(() => signBytes(id.secretKey.subarray(0, 32), new Uint8Array(1))).toThrow('bad secret key size');
  });

  it.each([
    ['jobId', { jobId: 'job2' }],
    ['round', { round: 4 }],
    ['stage', { stage: 'join' }],
    ['payloadHash', { payloadHash: payloadHash('{"a":2}') }],
    ['nonce', { nonce: newNonce() }],
  ])('a change of %s breaks the signature', (_name, change) => {
    const sig = signFields(id.secretKey, fields);
    expect(verifier.verify(id.clientId, { ...fields, ...change }, sig)).toBe(false);
  });

  it('rejects another key, malformed keys and malformed signatures without throwing', () => {
    const other = generateIdentity();
    const sig = signFields(other.secretKey, fields);
    expect(verifier.verify(id.clientId, fields, sig)).toBe(false);
    expect(verifier.verify('zz', fields, sig)).toBe(false);
    expect(verifier.verify(id.clientId, fields, 'abc')).toBe(false);
  });

  it('payload hash covers the binary attachment', () => {
    expect(payloadHash('{}', new Uint8Array([1, 2]))).not.toBe(payloadHash('{}', new Uint8Array([1, 3])));
    expect(payloadHash('{}')).toBe(payloadHash('{}', new Uint8Array(0)));
  });
});

describe('nonce cache', () => {
  it('accepts a nonce once per client and forgets the oldest past its bound', () => {
    const cache = new NonceCache(2);
    expect(cache.checkAndRemember('a', 'n1')).toBe(true);
    expect(cache.checkAndRemember('a', 'n1')).toBe(false);
    expect(cache.checkAndRemember('b', 'n1')).toBe(true);
    cache.checkAndRemember('a', 'n2');
    cache.checkAndRemember('a', 'n3');
    expect(cache.checkAndRemember('a', 'n1')).toBe(true);
  });
});
