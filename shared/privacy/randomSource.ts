import { createCipheriv, createHash, randomFillSync } from 'node:crypto';
import { TributaryError } from '../errors';

// Module-level aliases: these run per coordinate or per series term, and a global lookup such as
// `Math.floor` costs ~0.5 us inside jest's vm sandbox (a plain property load elsewhere).
const { ceil } = Math;
const { isSafeInteger } = Number;

/** Where random bytes come from: the OS CSPRNG in production, a ChaCha20 keystream when a test needs a seed. */
export type ByteSource = (bytes: Uint8Array) => void;

const BUFFER_BYTES = 64 * 1024;
const TWO_POW_26 = 2 ** 26;
const TWO_POW_32 = 2 ** 32;
const TWO_POW_53 = 2 ** 53;

/**
 * Uniform random numbers for the privacy mechanisms, drawn from a byte source through a buffer.
 *
 * Every draw is exact: integers come from rejection sampling (no modulo bias), floats carry 53 random
 * bits. The noise samplers (Gaussian, discrete Gaussian, randomized rounding) take a `RandomStream`
 * so production code uses `cryptoRandom()` (node:crypto's CSPRNG) and tests can pass
 * `seededRandom(label)` (the ChaCha20 keystream of SHA-256(label)) to be deterministic.
 */
export class RandomStream {
  private readonly buffer = new Uint8Array(BUFFER_BYTES);
  private readonly words = new Uint32Array(this.buffer.buffer);
  private next = BUFFER_BYTES / 4;

  constructor(private readonly source: ByteSource) {}

  /** A uniform integer in [0, 2^32). */
  uint32(): number {
    if (this.next === this.words.length) {
      this.source(this.buffer);
      this.next = 0;
    }
    return this.words[this.next++];
  }

  /** A uniform float in [0, 1) with 53 random bits. */
  uniform(): number {
    return this.uint53() / TWO_POW_53;
  }

  /** A uniform integer in [0, 2^53). */
  uint53(): number {
    return (this.uint32() >>> 5) * TWO_POW_26 + (this.uint32() >>> 6);
  }

  /** A fair coin. */
  bit(): boolean {
    return (this.uint32() & 1) === 1;
  }

  /** A uniform integer in [0, n) for a safe integer n >= 1, by rejection (exact). */
  below(n: number): number {
    if (!(isSafeInteger(n) && n >= 1)) {
      throw new TributaryError('INTERNAL', `below(n) needs a safe integer n >= 1, got ${n}`);
    }
    if (n <= TWO_POW_32) {
      // Accept x only below the largest multiple of n, so every residue is equally likely.
      const limit = TWO_POW_32 - (TWO_POW_32 % n);
      for (;;) {
        const x = this.uint32();
        if (x < limit) return x % n;
      }
    }
    const limit = TWO_POW_53 - (TWO_POW_53 % n);
    for (;;) {
      const x = this.uint53();
      if (x < limit) return x % n;
    }
  }

  /** A uniform bigint in [0, n) for n >= 1, by rejection on the bit length of n (exact). */
  belowBig(n: bigint): bigint {
    if (n < 1n) throw new TributaryError('INTERNAL', `belowBig(n) needs n >= 1, got ${n}`);
    const bits = n.toString(2).length;
    const words = ceil(bits / 32);
    const excess = BigInt(words * 32 - bits);
    for (;;) {
      let x = 0n;
      for (let i = 0; i < words; i++) x = (x << 32n) | BigInt(this.uint32());
      x >>= excess;
      if (x < n) return x;
    }
  }
}

/** Random numbers from node:crypto's CSPRNG (randomFillSync), for every noise a real job adds. */
export function cryptoRandom(): RandomStream {
  return new RandomStream((bytes) => randomFillSync(bytes));
}

/**
 * Deterministic random numbers: the ChaCha20 keystream (node:crypto) under key SHA-256(label).
 * For tests and for public randomness every party must agree on (the rotation signs of a round);
 * never for the noise of a real job, whose randomness must stay secret.
 */
export function seededRandom(label: string | Uint8Array): RandomStream {
  const key = createHash('sha256').update(label).digest();
  const cipher = createCipheriv('chacha20', key, Buffer.alloc(16));
  const zeros = new Uint8Array(BUFFER_BYTES);
  return new RandomStream((bytes) => {
    const stream = cipher.update(zeros.subarray(0, bytes.length));
    bytes.set(stream);
  });
}
