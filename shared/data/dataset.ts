import { sizeOfShape } from '../codec/tensors';

/**
 * An in-memory labelled dataset: `count` examples of shape `exampleShape`, features as one row-major
 * Float32Array (`count × product(exampleShape)` values) and integer class labels.
 */
export interface Dataset {
  x: Float32Array;
  y: Int32Array;
  count: number;
  exampleShape: number[];
}

/** Number of feature values in one example (the product of its shape). */
export const exampleSize: (exampleShape: readonly number[]) => number = sizeOfShape;

/** Examples [start, end) as a new dataset (copies, so the result does not pin the source buffers). */
export function sliceDataset(dataset: Dataset, start: number, end: number = dataset.count): Dataset {
  const from = Math.max(0, Math.min(start, dataset.count));
  const to = Math.max(from, Math.min(end, dataset.count));
  const size = exampleSize(dataset.exampleShape);
  return {
    x: dataset.x.slice(from * size, to * size),
    y: dataset.y.slice(from, to),
    count: to - from,
    exampleShape: [...dataset.exampleShape],
  };
}

/** The examples at `indices`, in that order, as a new dataset. */
export function selectExamples(dataset: Dataset, indices: ArrayLike<number>): Dataset {
  const size = exampleSize(dataset.exampleShape);
  const x = new Float32Array(indices.length * size);
  const y = new Int32Array(indices.length);
  for (let i = 0; i < indices.length; i++) {
    const j = indices[i];
    if (!(j >= 0 && j < dataset.count)) throw new RangeError(`example index ${j} is outside [0, ${dataset.count})`);
    x.set(dataset.x.subarray(j * size, (j + 1) * size), i * size);
    y[i] = dataset.y[j];
  }
  return { x, y, count: indices.length, exampleShape: [...dataset.exampleShape] };
}

/** Examples of every dataset, in order. All must share one example shape. */
export function concatDatasets(datasets: readonly Dataset[]): Dataset {
  if (datasets.length === 0) throw new RangeError('concatDatasets needs at least one dataset');
  const shape = datasets[0].exampleShape;
  for (const d of datasets) {
    if (d.exampleShape.length !== shape.length || d.exampleShape.some((v, i) => v !== shape[i])) {
      throw new RangeError(`cannot concatenate examples of shape [${d.exampleShape}] with [${shape}]`);
    }
  }
  const count = datasets.reduce((n, d) => n + d.count, 0);
  const size = exampleSize(shape);
  const x = new Float32Array(count * size);
  const y = new Int32Array(count);
  let at = 0;
  for (const d of datasets) {
    x.set(d.x.subarray(0, d.count * size), at * size);
    y.set(d.y.subarray(0, d.count), at);
    at += d.count;
  }
  return { x, y, count, exampleShape: [...shape] };
}

/** How many examples carry each label 0..numClasses-1. */
export function classCounts(dataset: Dataset, numClasses: number): number[] {
  const counts = new Array<number>(numClasses).fill(0);
  for (let i = 0; i < dataset.count; i++) counts[dataset.y[i]]++;
  return counts;
}

/**
 * Appends examples one at a time into growing typed arrays, for loaders that do not know the row
 * count in advance. Capacity doubles, so loading n rows copies O(n) values in total.
 */
export class DatasetBuilder {
  readonly exampleSize: number;
  private x: Float32Array;
  private y: Int32Array;
  private n = 0;

  /** @param initialCapacity examples to allocate up front. @default as many as fit in 4 MiB, at most 1024 */
  constructor(
    readonly exampleShape: readonly number[],
    initialCapacity?: number,
  ) {
    this.exampleSize = exampleSize(exampleShape);
    const capacity = Math.max(1, initialCapacity ?? Math.min(1024, Math.floor(2 ** 20 / this.exampleSize)));
    this.x = new Float32Array(capacity * this.exampleSize);
    this.y = new Int32Array(capacity);
  }

  get count(): number {
    return this.n;
  }

  /** Reserves the next example and returns the row to write its features into. */
  addExample(label: number): Float32Array {
    if (this.n === this.y.length) this.grow();
    this.y[this.n] = label;
    const row = this.x.subarray(this.n * this.exampleSize, (this.n + 1) * this.exampleSize);
    this.n++;
    return row;
  }

  /** The dataset so far, trimmed to size. */
  build(): Dataset {
    return {
      x: this.x.slice(0, this.n * this.exampleSize),
      y: this.y.slice(0, this.n),
      count: this.n,
      exampleShape: [...this.exampleShape],
    };
  }

  private grow(): void {
    const capacity = this.y.length * 2;
    const x = new Float32Array(capacity * this.exampleSize);
    x.set(this.x);
    const y = new Int32Array(capacity);
    y.set(this.y);
    this.x = x;
    this.y = y;
  }
}
