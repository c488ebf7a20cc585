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

  it('signs with the key an array holds now, not the one imported for it before', () => {
    const message = nacl.randomBytes(64);
    const first = generateIdentity();
    const second = generateIdentity();
    const key = Uint8Array.from(first.secretKey);
    const byFirst = Buffer.from(nacl.sign.detached(message, first.secretKey)).toString('hex');
    expect(signBytes(key, message)).toBe(byFirst);
    expect(signBytes(key, message)).toBe(byFirst);
    // The same array overwritten with another identity's key: the cached import must not be used.
    key.set(second.secretKey);
    expect(signBytes(key, message)).toBe(Buffer.from(nacl.sign.detached(message, second.secretKey)).toString('hex'));
    // A key array that is a view into a larger buffer imports from its own bytes.
    const backing = new Uint8Array(80);
    backing.set(first.secretKey, 8);
    expect(signBytes(backing.subarray(8, 72), message)).toBe(byFirst);
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
