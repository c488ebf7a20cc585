import { createPrivateKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import type { Identity } from '../shared/identity/keyPair';
import { newNonce, payloadHash, signFields, signingBytes, type SignedFields } from '../shared/identity/signing';
import type { HandshakeAuth } from '../shared/schemas/messages';
import { handshakeAuthWith } from '../client/coordinatorConnection';

/**
 * An Ed25519 identity for load generators: the same raw keys and the same signatures as the client's
 * tweetnacl path (Ed25519 is deterministic), made with node:crypto, which signs ~100x faster. The
 * benchmarks use it so that the load generator's CPU, which shares the process (or the 2 cores) with
 * the coordinator, is not mistaken for coordinator cost.
 */
export interface FastIdentity extends Identity {
  privateKey: KeyObject;
}

// DER prefix of an Ed25519 PKCS#8 private key: the 32-byte seed follows it.
const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

/** A fresh key pair (node:crypto keygen: tens of microseconds, against ~10 ms with tweetnacl here). */
export function generateFastIdentity(): FastIdentity {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const seed = privateKey.export({ format: 'der', type: 'pkcs8' }).subarray(-32);
  const pub = publicKey.export({ format: 'der', type: 'spki' }).subarray(-32);
  return {
    privateKey,
    publicKey: new Uint8Array(pub),
    // tweetnacl's secret key layout: seed ‖ public key.
    secretKey: new Uint8Array(Buffer.concat([seed, pub])),
    clientId: pub.toString('hex'),
  };
}

/** Signs the protocol's fields exactly as signFields does (hex). */
export function fastSignFields(identity: FastIdentity, fields: SignedFields): string {
  return sign(null, signingBytes(fields), identity.privateKey).toString('hex');
}

/** The socket.io handshake `auth` object, built by the client's own handshakeAuthWith with this signer. */
export function fastHandshakeAuth(identity: FastIdentity, coordinatorUrl: string, now = Date.now()): HandshakeAuth {
  return handshakeAuthWith(identity.clientId, (fields) => fastSignFields(identity, fields), coordinatorUrl, now);
}

/**
 * Checks that the fast signer produces the client's (tweetnacl) signature byte for byte, and returns
 * how long one tweetnacl signature takes here (ms), the cost the stock client pays per message.
 */
export function checkFastSigner(samples = 20): {
  identical: boolean;
  tweetnaclSignMs: number;
  nodeCryptoSignMs: number;
} {
  const identity = generateFastIdentity();
  // Round-trip the seed through node:crypto too, so the derived key is the one tweetnacl would use.
  const again = createPrivateKey({
    key: Buffer.concat([ED25519_PKCS8_PREFIX, Buffer.from(identity.secretKey.subarray(0, 32))]),
    format: 'der',
    type: 'pkcs8',
  });
  const fields: SignedFields = {
    jobId: 'job_x',
    round: 3,
    stage: 'update-commit',
    payloadHash: payloadHash('{}'),
    nonce: newNonce(),
  };
  const identical =
    fastSignFields(identity, fields) === signFields(identity.secretKey, fields) &&
    sign(null, signingBytes(fields), again).toString('hex') === signFields(identity.secretKey, fields);
  let t0 = performance.now();
  for (let i = 0; i < samples; i++) signFields(identity.secretKey, fields);
  const tweetnaclSignMs = (performance.now() - t0) / samples;
  t0 = performance.now();
  for (let i = 0; i < samples * 50; i++) fastSignFields(identity, fields);
  const nodeCryptoSignMs = (performance.now() - t0) / (samples * 50);
  return { identical, tweetnaclSignMs, nodeCryptoSignMs };
}
