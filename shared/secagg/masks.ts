import { type Cipher, createCipheriv } from 'node:crypto';
import { endianness } from 'node:os';
import { TributaryError } from '../errors';
import { addWordsSimd } from './wordAdd';

/** Seeds are 32 bytes: a ChaCha20 key. */
export const SEED_BYTES = 32;

// ChaCha20 in node:crypto takes a 16-byte IV: a 4-byte block counter followed by a 12-byte nonce.
// Every seed is used for exactly one mask, so a zero IV is safe (the same seed always gives the same
// mask, which is what lets the server recompute a dropped client's masks).
const ZERO_IV = Buffer.alloc(16);
const LITTLE_ENDIAN = endianness() === 'LE';

// The keystream is ChaCha20 over zeros; the zero input is shared and reused (grown up to MAX_CHUNK_WORDS
// words; longer masks are produced in pieces of that size, which the stream cipher continues).
const MAX_CHUNK_WORDS = 1 << 20;
let zeros = Buffer.alloc(0);

function zeroInput(words: number): Buffer {
  if (zeros.length < words * 4) zeros = Buffer.alloc(Math.min(MAX_CHUNK_WORDS, Math.max(words, 1024)) * 4);
  return zeros.length === words * 4 ? zeros : zeros.subarray(0, words * 4);
}

function checkSeed(seed: Uint8Array): void {
  if (seed.length !== SEED_BYTES) {
    throw new TributaryError('VALIDATION_FAILED', `a mask seed must be ${SEED_BYTES} bytes, got ${seed.length}`);
  }
}

/** The next `words` keystream elements as little-endian uint32, viewed in place when aligned. */
function nextWords(cipher: Cipher, words: number): Uint32Array {
  const bytes = cipher.update(zeroInput(words));
  if (LITTLE_ENDIAN && bytes.byteOffset % 4 === 0) return new Uint32Array(bytes.buffer, bytes.byteOffset, words);
  const out = new Uint32Array(words);
  for (let i = 0; i < words; i++) out[i] = bytes.readUInt32LE(i * 4);
  return out;
}

/**
 * Expands a 32-byte seed into `length` pseudorandom elements of Z_(2^32): the ChaCha20 keystream
 * (RFC 8439 via node:crypto / OpenSSL), read as little-endian uint32.
 */
export function expandMask(seed: Uint8Array, length: number): Uint32Array {
  checkSeed(seed);
  checkLength(length);
  const out = new Uint32Array(length);
  const cipher = createCipheriv('chacha20', seed, ZERO_IV);
  for (let offset = 0; offset < length; offset += MAX_CHUNK_WORDS) {
    out.set(nextWords(cipher, Math.min(MAX_CHUNK_WORDS, length - offset)), offset);
  }
  cipher.final();
  return out;
}

function checkLength(length: number): void {
  if (!(Number.isInteger(length) && length >= 0)) {
    throw new TributaryError('VALIDATION_FAILED', `mask length must be a non-negative integer, got ${length}`);
  }
}

function checkLengths(target: Uint32Array, other: Uint32Array): void {
  if (target.length !== other.length) {
    throw new TributaryError('VALIDATION_FAILED', `vector lengths differ: ${target.length} and ${other.length}`);
  }
}

/** target += other (mod 2^32), in place; returns target. */
export function addInPlace(target: Uint32Array, other: Uint32Array): Uint32Array {
  checkLengths(target, other);
  if (addWordsSimd(target, other, 1)) return target;
  // Uint32Array stores modulo 2^32 on assignment; the float sum of two uint32 is exact (< 2^53).
  for (let i = 0; i < target.length; i++) target[i] = target[i] + other[i];
  return target;
}

/** target -= other (mod 2^32), in place; returns target. */
export function subtractInPlace(target: Uint32Array, other: Uint32Array): Uint32Array {
  checkLengths(target, other);
  if (addWordsSimd(target, other, -1)) return target;
  for (let i = 0; i < target.length; i++) target[i] = target[i] - other[i];
  return target;
}

/**
 * Adds (sign +1) or subtracts (sign -1) the mask expanded from `seed`, in place: the keystream is
 * viewed where the cipher wrote it and added straight into `target` (no mask-sized copy).
 */
export function applyMask(target: Uint32Array, seed: Uint8Array, sign: 1 | -1): Uint32Array {
  checkSeed(seed);
  const cipher = createCipheriv('chacha20', seed, ZERO_IV);
  for (let offset = 0; offset < target.length; offset += MAX_CHUNK_WORDS) {
    const mask = nextWords(cipher, Math.min(MAX_CHUNK_WORDS, target.length - offset));
    const part = mask.length === target.length ? target : target.subarray(offset, offset + mask.length);
    if (sign === 1) addInPlace(part, mask);
    else subtractInPlace(part, mask);
  }
  cipher.final();
  return target;
}

/** One mask to add (sign +1) or subtract (sign -1): see applyMasks. */
export interface SignedSeed {
  seed: Uint8Array;
  sign: 1 | -1;
}

// Fused target += a (+ b (+ c (+ d))): one pass over the target per four masks instead of one per mask.
function addAll(target: Uint32Array, offset: number, m: Uint32Array[], sign: 1 | -1): void {
  const n = m[0].length;
  const t = offset === 0 && n === target.length ? target : target.subarray(offset, offset + n);
  // Uint32Array stores modulo 2^32 on assignment; these sums stay far below 2^53, so they are exact.
  if (m.length === 4) {
    const [a, b, c, d] = m;
    if (sign === 1) for (let i = 0; i < n; i++) t[i] = t[i] + (a[i] + b[i] + c[i] + d[i]);
    else for (let i = 0; i < n; i++) t[i] = t[i] - (a[i] + b[i] + c[i] + d[i]);
  } else if (m.length === 3) {
    const [a, b, c] = m;
    if (sign === 1) for (let i = 0; i < n; i++) t[i] = t[i] + (a[i] + b[i] + c[i]);
    else for (let i = 0; i < n; i++) t[i] = t[i] - (a[i] + b[i] + c[i]);
  } else if (m.length === 2) {
    const [a, b] = m;
    if (sign === 1) for (let i = 0; i < n; i++) t[i] = t[i] + (a[i] + b[i]);
    else for (let i = 0; i < n; i++) t[i] = t[i] - (a[i] + b[i]);
  } else if (sign === 1) addInPlace(t, m[0]);
  else subtractInPlace(t, m[0]);
}

/**
 * Adds or subtracts every listed mask into `target`, in place: the same result as applyMask for
 * each in turn, with up to four keystreams added in one pass (masks of the same sign together).
 */
export function applyMasks(target: Uint32Array, masks: readonly SignedSeed[]): Uint32Array {
  for (const m of masks) checkSeed(m.seed);
  for (const sign of [1, -1] as const) {
    const seeds = masks.filter((m) => m.sign === sign).map((m) => m.seed);
    for (let g = 0; g < seeds.length; g += 4) {
      const ciphers = seeds.slice(g, g + 4).map((seed) => createCipheriv('chacha20', seed, ZERO_IV));
      for (let offset = 0; offset < target.length; offset += MAX_CHUNK_WORDS) {
        const words = Math.min(MAX_CHUNK_WORDS, target.length - offset);
        addAll(
          target,
          offset,
          ciphers.map((c) => nextWords(c, words)),
          sign,
        );
      }
      for (const c of ciphers) c.final();
    }
  }
  return target;
}
