import { TributaryError } from '../errors';
import { seededRandom } from './randomSource';

/** Vectors up to this length can be rotated (2^26 = 67M: above the job spec's parameter limit). */
const MAX_PADDED_LENGTH = 2 ** 26;

/** The smallest power of two >= length (at least 1): the length a randomized Hadamard rotation works on. */
export function paddedLength(length: number): number {
  if (!(Number.isInteger(length) && length >= 0)) {
    throw new TributaryError('CONFIG_INVALID', `a vector length must be a non-negative integer, got ${length}`);
  }
  let n = 1;
  while (n < length) n *= 2;
  if (n > MAX_PADDED_LENGTH)
    throw new TributaryError('CONFIG_INVALID', `vectors of ${length} values are too long to rotate`);
  return n;
}

/** In-place fast Walsh-Hadamard transform (unnormalised: applying it twice multiplies by the length). */
function walshHadamard(a: Float64Array): void {
  for (let h = 1; h < a.length; h *= 2) {
    for (let i = 0; i < a.length; i += 2 * h) {
      for (let j = i; j < i + h; j++) {
        const x = a[j];
        const y = a[j + h];
        a[j] = x + y;
        a[j + h] = x - y;
      }
    }
  }
}

/** The diagonal of random signs for a rotation seed (public: every client of a round uses the same). */
function signs(seed: string, n: number): Uint8Array {
  const random = seededRandom(`tributary/privacy/rotation/v1/${seed}`);
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 32) {
    const word = random.uint32();
    for (let b = 0; b < 32 && i + b < n; b++) out[i + b] = (word >>> b) & 1;
  }
  return out;
}

/**
 * The randomized Hadamard rotation ("flattening") of Kairouz, Liu & Steinke 2021, Sec. 4.1:
 * y = H D x / sqrt(n), with x zero-padded to n = paddedLength(x.length), D a diagonal of random signs
 * derived from `seed` and H the Walsh-Hadamard matrix. It is orthonormal (L2 norms are kept) and
 * spreads a vector's mass evenly: each coordinate of y is sub-Gaussian with variance ||x||^2 / n, so
 * rounding and the modular wrap-around cost far less than on the raw coordinates.
 */
export function rotate(x: ArrayLike<number>, seed: string): Float64Array {
  const n = paddedLength(x.length);
  const d = signs(seed, n);
  const y = new Float64Array(n);
  for (let i = 0; i < x.length; i++) y[i] = d[i] ? -x[i] : x[i];
  walshHadamard(y);
  const scale = 1 / Math.sqrt(n);
  for (let i = 0; i < n; i++) y[i] *= scale;
  return y;
}

/** The inverse of `rotate`: x = D H y / sqrt(n), truncated to the original `length`. */
export function unrotate(y: Float64Array, length: number, seed: string): Float64Array {
  const n = y.length;
  if (n !== paddedLength(length)) {
    throw new TributaryError(
      'VALIDATION_FAILED',
      `a rotated vector of ${length} values has ${paddedLength(length)} values, got ${n}`,
    );
  }
  const work = new Float64Array(y);
  walshHadamard(work);
  const d = signs(seed, n);
  const scale = 1 / Math.sqrt(n);
  const out = new Float64Array(length);
  for (let i = 0; i < length; i++) out[i] = (d[i] ? -work[i] : work[i]) * scale;
  return out;
}
