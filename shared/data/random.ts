/**
 * Seeded pseudo-random numbers for everything that must be reproducible across processes:
 * shuffling, partitioning, model initialisation seeds. Not for cryptography.
 */

/** A source of uniform floats in [0, 1). */
export type Rng = () => number;

/** Mixes a 32-bit value (murmur3 finaliser), so that nearby seeds give unrelated streams. */
function mix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** mulberry32: a small, fast 32-bit generator, deterministic for a given integer seed. */
export function createRng(seed: number): Rng {
  let state = mix32((Math.trunc(seed) ^ 0x9e3779b9) >>> 0);
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A seed in [0, 2^31) derived from a base seed and labels, e.g. `deriveSeed(seed, 'conv1', 'kernel')`. */
export function deriveSeed(seed: number, ...labels: Array<string | number>): number {
  let h = mix32(Math.trunc(seed) >>> 0);
  for (const label of labels) {
    const s = String(label);
    // FNV-1a over the label, then a mix as the separator, so ('ab', 'c') differs from ('a', 'bc').
    for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
    h = mix32(h ^ 0xff);
  }
  return mix32(h) & 0x7fffffff;
}

/** Integer in [0, n). */
export function randomInt(rng: Rng, n: number): number {
  return Math.floor(rng() * n);
}

/** Fisher–Yates shuffle in place; returns the same array. */
export function shuffleInPlace<T extends { length: number; [i: number]: unknown }>(array: T, rng: Rng): T {
  for (let i = array.length - 1; i > 0; i--) {
    const j = randomInt(rng, i + 1);
    const tmp = array[i];
    array[i] = array[j];
    array[j] = tmp;
  }
  return array;
}

/** A random permutation of 0..n-1. */
export function permutation(n: number, rng: Rng): Int32Array {
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = i;
  return shuffleInPlace(out, rng);
}

/** Standard normal sample (Box–Muller). */
export function normalSample(rng: Rng): number {
  // 1 - u keeps the argument of log in (0, 1].
  const u = 1 - rng();
  const v = rng();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

/** Gamma(shape, 1) sample by Marsaglia and Tsang (2000), with the shape < 1 boost. */
export function gammaSample(shape: number, rng: Rng): number {
  if (!(shape > 0)) throw new RangeError(`gamma shape must be > 0, got ${shape}`);
  if (shape < 1) {
    // Gamma(a) = Gamma(a + 1) * U^(1/a).
    return gammaSample(shape + 1, rng) * (1 - rng()) ** (1 / shape);
  }
  const d = shape - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    let x: number;
    let v: number;
    do {
      x = normalSample(rng);
      v = 1 + c * x;
    } while (v <= 0);
    v = v * v * v;
    const u = 1 - rng();
    if (u < 1 - 0.0331 * x * x * x * x) return d * v;
    if (Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v))) return d * v;
  }
}

/** A sample from Dirichlet(alpha, ..., alpha) with `k` components (normalised Gamma draws). */
export function dirichletSample(k: number, alpha: number, rng: Rng): Float64Array {
  const out = new Float64Array(k);
  let sum = 0;
  for (let i = 0; i < k; i++) {
    out[i] = gammaSample(alpha, rng);
    sum += out[i];
  }
  if (sum === 0) {
    // Tiny alphas can underflow every draw; fall back to one-hot, the limit of alpha -> 0.
    out[randomInt(rng, k)] = 1;
    return out;
  }
  for (let i = 0; i < k; i++) out[i] /= sum;
  return out;
}
