import * as tf from '@tensorflow/tfjs-core';
import { type Dataset, exampleSize } from '../data/dataset';

/**
 * Consecutive batches of a shuffled epoch, laid out once in one array each for features, one-hot
 * labels and labels. A batch's tensors are views of those arrays handed to the backend as they are
 * (one copy into its memory, no per-example work); the run's labels are uploaded once, for the metrics.
 * Why not one upload and a slice per batch: the wasm backend's Slice and SplitV take 2-5 ms per 32-digit
 * batch, more than a training step. The caller disposes `labels` (disposeBatchRun).
 */
export interface BatchRun {
  /** Batches in the run. */
  readonly batches: number;
  /** Examples in the run. */
  readonly count: number;
  /** Labels of the whole run in batch order: [count] int32. */
  readonly labels: tf.Tensor1D;
  /** Batch i's features [batch, ...exampleShape] and one-hot labels [batch, numClasses], float32; the caller disposes them. */
  batch(i: number): { xs: tf.Tensor; oneHot: tf.Tensor2D };
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

/** Lays out the examples at order[start, end) as batches of `batchSize` (the last may be smaller). */
export function layOutBatchRun(
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
  return {
    batches: Math.ceil(count / batchSize),
    count,
    labels: tf.tensor1d(y, 'int32'),
    batch(i) {
      const from = i * batchSize;
      const n = Math.min(batchSize, count - from);
      return {
        xs: tf.tensor(x.subarray(from * size, (from + n) * size), [n, ...data.exampleShape], 'float32'),
        oneHot: tf.tensor2d(oneHot.subarray(from * numClasses, (from + n) * numClasses), [n, numClasses], 'float32'),
      };
    },
  };
}

/** Frees a run's tensors. */
export function disposeBatchRun(run: BatchRun): void {
  run.labels.dispose();
}
