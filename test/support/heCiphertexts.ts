import { randomBytes } from 'node:crypto';
import { ciphertextLayout, type HeParameterSet } from '../../shared/he';

/**
 * Replaces c0 of every ciphertext in `bytes` with uniformly random coefficients mod q (in place): the
 * result is still a well-formed ciphertext of the set, but its noise is near q/2, so it has no noise
 * budget left (the chance that all N coefficients land within q/4 is 2^-N).
 */
export function drownInNoise(set: HeParameterSet, bytes: Uint8Array): Uint8Array {
  const layout = ciphertextLayout(set);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const q = set.coeffModulus[0];
  for (let c = 0; c < bytes.length / layout.bytes; c++) {
    const random = randomBytes(8 * set.polyModulusDegree);
    for (let i = 0; i < set.polyModulusDegree; i++) {
      const at = c * layout.bytes + layout.prefix.length + 8 * i;
      view.setBigUint64(at, random.readBigUInt64LE(8 * i) % q, true);
    }
  }
  return bytes;
}
