import { TributaryError } from '../errors';

/**
 * Fixed-width big-endian serialisation of Paillier ciphertexts: each value in [0, n²) takes exactly
 * `ciphertextWidth(n)` bytes, so an encrypted update of k ciphertexts is exactly k·width bytes and the
 * coordinator can bound an upload before it arrives.
 */

/** Bytes of one ciphertext of the key with modulus n: ceil(bitLength(n²) / 8). */
export function ciphertextWidth(n: bigint): number {
  return Math.ceil((n * n).toString(2).length / 8);
}

/** Writes each value as `width` big-endian bytes. Throws VALIDATION_FAILED when a value is negative or too wide. */
export function ciphertextsToBytes(values: readonly bigint[], width: number): Uint8Array {
  const out = new Uint8Array(values.length * width);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (typeof v !== 'bigint' || v < 0n)
      throw new TributaryError('VALIDATION_FAILED', `paillier: value ${i} is not a non-negative bigint`);
    const hex = v.toString(16);
    if (hex.length > width * 2)
      throw new TributaryError('VALIDATION_FAILED', `paillier: value ${i} does not fit ${width} bytes`);
    const bytes = Buffer.from(hex.padStart(width * 2, '0'), 'hex');
    out.set(bytes, i * width);
  }
  return out;
}

/**
 * Reads `bytes.length / width` big-endian values. Throws PAILLIER_CIPHERTEXT_INVALID unless the
 * length is exactly `count`·width (when `count` is given) and, with `modulus`, every value is in [1, modulus).
 */
export function ciphertextsFromBytes(
  bytes: Uint8Array,
  width: number,
  options: { count?: number; modulus?: bigint } = {},
): bigint[] {
  if (!Number.isInteger(width) || width <= 0 || bytes.length % width !== 0) {
    throw new TributaryError(
      'PAILLIER_CIPHERTEXT_INVALID',
      `paillier: ${bytes.length} bytes are not a whole number of ${width}-byte ciphertexts`,
    );
  }
  const count = bytes.length / width;
  if (options.count !== undefined && count !== options.count) {
    throw new TributaryError(
      'PAILLIER_CIPHERTEXT_INVALID',
      `paillier: expected ${options.count} ciphertexts (${options.count * width} bytes), got ${count} (${bytes.length} bytes)`,
    );
  }
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Array<bigint>(count);
  for (let i = 0; i < count; i++) {
    const v = BigInt(`0x${buf.toString('hex', i * width, (i + 1) * width)}`);
    if (options.modulus !== undefined && (v <= 0n || v >= options.modulus)) {
      throw new TributaryError('PAILLIER_CIPHERTEXT_INVALID', `paillier: ciphertext ${i} is outside [1, n²)`);
    }
    out[i] = v;
  }
  return out;
}
