import { createHash } from 'node:crypto';
import type { HeParameterSet } from './parameters';

/**
 * Layout checks of serialized BGV/BFV keys (SEAL 4.1, compression none), in plain JavaScript so that job
 * specs can be validated without loading SEAL, and so that nothing of the wrong shape ever reaches
 * its WebAssembly module (a buffer of the wrong shape can abort it instead of throwing).
 */

function coefficientsReduced(set: HeParameterSet, bytes: Uint8Array, offset: number, count: number): boolean {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = set.polyModulusDegree;
  const k = set.coeffModulus.length;
  for (let i = 0; i < count; i++) {
    if (view.getBigUint64(offset + 8 * i, true) >= set.coeffModulus[Math.floor(i / n) % k]) return false;
  }
  return true;
}

function startsWith(bytes: Uint8Array, offset: number, hex: string): boolean {
  const expected = Buffer.from(hex, 'hex');
  return Buffer.from(bytes.buffer, bytes.byteOffset + offset, expected.length).equals(expected);
}

/** Why `bytes` is not a seeded public key of the set, or null when it is one (by its layout). */
export function publicKeyProblem(set: HeParameterSet, bytes: Uint8Array): string | null {
  if (bytes.length !== set.publicKeyBytes) {
    return `a ${set.name} public key is ${set.publicKeyBytes} bytes (SEAL, seeded, uncompressed); got ${bytes.length}`;
  }
  const prefixBytes = set.publicKeyPrefixHex.length / 2;
  const count = set.polyModulusDegree * set.coeffModulus.length;
  if (!startsWith(bytes, 0, set.publicKeyPrefixHex)) {
    return `the key does not start like a seeded ${set.name} public key`;
  }
  if (!startsWith(bytes, prefixBytes + 8 * count, set.publicKeySeedHeadHex)) {
    return 'the seed section of the public key is not where the set puts it';
  }
  if (!coefficientsReduced(set, bytes, prefixBytes, count)) return 'a public-key coefficient is not reduced';
  return null;
}

/** Why `bytes` is not a secret key of the set, or null when it is one (by its layout). */
export function secretKeyProblem(set: HeParameterSet, bytes: Uint8Array): string | null {
  if (bytes.length !== set.secretKeyBytes) {
    return `a ${set.name} secret key is ${set.secretKeyBytes} bytes; got ${bytes.length}`;
  }
  if (!startsWith(bytes, 0, set.secretKeyPrefixHex)) return `the key does not start like a ${set.name} secret key`;
  const count = set.polyModulusDegree * set.coeffModulus.length;
  if (!coefficientsReduced(set, bytes, set.secretKeyPrefixHex.length / 2, count)) {
    return 'a secret-key coefficient is not reduced';
  }
  return null;
}

/** SHA-256 hex of a serialized public key (how logs and key files name it). */
export function publicKeyFingerprint(publicKey: Uint8Array): string {
  return createHash('sha256').update(publicKey).digest('hex');
}
