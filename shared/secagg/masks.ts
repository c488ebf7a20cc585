import { createCipheriv } from 'node:crypto';
import { endianness } from 'node:os';
import { TributaryError } from '../errors';

/** Seeds are 32 bytes: a ChaCha20 key. */
export const SEED_BYTES = 32;

// ChaCha20 in node:crypto takes a 16-byte IV: a 4-byte block counter followed by a 12-byte nonce.
// Every seed is used for exactly one mask, so a zero IV is safe (the same seed always gives the same
// mask, which is what lets the server recompute a dropped client's masks).
const ZERO_IV = Buffer.alloc(16);
const LITTLE_ENDIAN = endianness() === 'LE';

/**
 * Expands a 32-byte seed into `length` pseudorandom elements of Z_(2^32): the ChaCha20 keystream
 * (RFC 8439 via node:crypto / OpenSSL), read as little-endian uint32.
 */
export function expandMask(seed: Uint8Array, length: number): Uint32Array {
  if (seed.length !== SEED_BYTES) {
    throw new TributaryError('VALIDATION_FAILED', `a mask seed must be ${SEED_BYTES} bytes, got ${seed.length}`);
  }
  if (!(Number.isInteger(length) && length >= 0)) {
    throw new TributaryError('VALIDATION_FAILED', `mask length must be a non-negative integer, got ${length}`);
  }
  const cipher = createCipheriv('chacha20', seed, ZERO_IV);
  const stream = cipher.update(Buffer.alloc(length * 4));
  cipher.final();
  if (LITTLE_ENDIAN) {
    // Copy into a fresh, aligned buffer (Buffer slices from the pool may be unaligned).
    return new Uint32Array(new Uint8Array(stream).buffer, 0, length);
  }
  const out = new Uint32Array(length);
  for (let i = 0; i < length; i++) out[i] = stream.readUInt32LE(i * 4);
  return out;
}

function checkLengths(target: Uint32Array, other: Uint32Array): void {
  if (target.length !== other.length) {
    throw new TributaryError('VALIDATION_FAILED', `vector lengths differ: ${target.length} and ${other.length}`);
  }
}

/** target += other (mod 2^32), in place; returns target. */
export function addInPlace(target: Uint32Array, other: Uint32Array): Uint32Array {
  checkLengths(target, other);
  // Uint32Array stores modulo 2^32 on assignment; the float sum of two uint32 is exact (< 2^53).
  for (let i = 0; i < target.length; i++) target[i] = target[i] + other[i];
  return target;
}

/** target -= other (mod 2^32), in place; returns target. */
export function subtractInPlace(target: Uint32Array, other: Uint32Array): Uint32Array {
  checkLengths(target, other);
  for (let i = 0; i < target.length; i++) target[i] = target[i] - other[i];
  return target;
}

/** Adds (sign +1) or subtracts (sign -1) the mask expanded from `seed`, in place. */
export function applyMask(target: Uint32Array, seed: Uint8Array, sign: 1 | -1): Uint32Array {
  const mask = expandMask(seed, target.length);
  return sign === 1 ? addInPlace(target, mask) : subtractInPlace(target, mask);
}
