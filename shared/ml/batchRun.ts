import * as tf from '@tensorflow/tfjs-core';
import { type Dataset, exampleSize } from '../data/dataset';

/**
 * Consecutive batches of a shuffled epoch, uploaded to the backend in one piece (one tensor each for
 * features, one-hot labels and labels) and split there, so a training step does no per-batch copying
 * from JavaScript. The caller disposes it.
 */
export interface BatchRun {
  /** Features of each batch: [batch, ...exampleShape] float32. */
  xs: tf.Tensor[];
  /** One-hot labels of each batch: [batch, numClasses] float32. */
  oneHot: tf.Tensor2D[];
  /** Labels of the whole run, in batch order: [count] int32. */
  labels: tf.Tensor1D;
  /** Examples in the run. */
  count: number;
}

/** Feature and label bytes a run may hold; bounds the extra memory a run costs on any dataset size. */
export const BATCH_RUN_MAX_BYTES = 32 * 1024 * 1024;

/** Examples per run: whole batches of up to `maxBytes` of features and one-hot labels, at least one batch. */
export function batchRunLength(
  exampleShape: readonly number[],
  numClasses: number,
  batchSize: number,
  maxBytes = BATCH_RUN_MAX_BYTES,
): number {
  const bytesPerExample = 4 * (exampleSize(exampleShape) + numClasses + 1);
  const batches = Math.max(1, Math.floor(maxBytes / (bytesPerExample * batchSize)));
  return batches * batchSize;
}

/** Uploads the examples at order[start, end) as batches of `batchSize` (the last may be smaller). */
export function uploadBatchRun(
  data: Dataset,
  order: ArrayLike<number>,
  start: number,
  end: number,
  batchSize: number,
  numClasses: number,
): BatchRun {
  const size = exampleSize(data.exampleShape);
  const count = end - start;
  const x = new Float32Array(count * size);
  const y = new Int32Array(count);
  const oneHot = new Float32Array(count * numClasses);
  for (let i = 0; i < count; i++) {
    const j = order[start + i];
    x.set(data.x.subarray(j * size, (j + 1) * size), i * size);
    y[i] = data.y[j];
    oneHot[i * numClasses + y[i]] = 1;
  }
  const sizes: number[] = [];
  for (let s = 0; s < count; s += batchSize) sizes.push(Math.min(batchSize, count - s));
  return tf.tidy(() => ({
    xs: tf.split(tf.tensor(x, [count, ...data.exampleShape], 'float32'), sizes, 0),
    oneHot: tf.split(tf.tensor2d(oneHot, [count, numClasses], 'float32'), sizes, 0) as tf.Tensor2D[],
    labels: tf.tensor1d(y, 'int32'),
    count,
  }));
}

/** Frees a run's tensors. */
export function disposeBatchRun(run: BatchRun): void {
  tf.dispose([...run.xs, ...run.oneHot, run.labels]);
}
