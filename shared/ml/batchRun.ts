import * as tf from '@tensorflow/tfjs-core';
import { type Dataset, exampleSize } from '../data/dataset';

/**
 * Consecutive batches of a shuffled epoch. Each batch's features and one-hot labels are gathered from
 * the dataset straight into the backend's memory when it is the wasm heap (one copy per value), else
 * into new arrays the backend takes as they are; the run's labels are uploaded once, for the metrics.
 * Why not one upload and a slice per batch: the wasm backend's Slice and SplitV take 2-5 ms per 32-digit
 * batch, more than a training step. Why not a run-wide layout in one array and a view per batch (the
 * previous design): on wasm that copied every value twice, and allocating the layout cost more than the
 * copies (130-260 µs per 32-digit batch against ~60 µs gathered into the heap, measured). With
 * `reuseTensors` every full batch is written into the same two tensors (~5 % of an MLP step saved: no
 * allocation and disposal per batch). The caller disposes the run (disposeBatchRun).
 */
export interface BatchRun {
  /** Batches in the run. */
  readonly batches: number;
  /** Examples in the run. */
  readonly count: number;
  /** Labels of the whole run in batch order: [count] int32. */
  readonly labels: tf.Tensor1D;
  /** The run's own batch tensors when it reuses them (BatchRunOptions.reuseTensors), else null. */
  readonly reused: { xs: tf.Tensor; oneHot: tf.Tensor2D } | null;
  /**
   * Batch i's features [batch, ...exampleShape] and one-hot labels [batch, numClasses], float32; the caller
   * disposes them unless they are `reused` (valid until the next call then).
   */
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

/** The wasm backend's way to make an output and see it on its heap (as our typed-array kernels use). */
interface WasmHeap {
  makeOutput(shape: number[], dtype: 'float32'): tf.TensorInfo;
  typedArrayFromHeap(info: tf.TensorInfo): Float32Array;
}

function wasmHeap(): WasmHeap | null {
  if (tf.getBackend() !== 'wasm') return null;
  const backend = tf.backend() as unknown as Partial<WasmHeap>;
  return typeof backend.makeOutput === 'function' && typeof backend.typedArrayFromHeap === 'function'
    ? (backend as WasmHeap)
    : null;
}

/** Options of layOutBatchRun. */
export interface BatchRunOptions {
  /**
   * On wasm, write every full batch into one pair of tensors the run owns (the caller must not dispose
   * them; disposeBatchRun does), overwritten in place by the next batch(): no allocation per batch. Only
   * for steps that never hand the features to XNNPACK as a packed operand (a product's right side or a
   * filter), whose packing TF.js caches per tensor: the layerwise plan transposes them first. @default false
   */
  reuseTensors?: boolean;
}

/** The examples at order[start, end) as batches of `batchSize` (the last may be smaller). */
export function layOutBatchRun(
  data: Dataset,
  order: ArrayLike<number>,
  start: number,
  end: number,
  batchSize: number,
  numClasses: number,
  options: BatchRunOptions = {},
): BatchRun {
  const size = exampleSize(data.exampleShape);
  const count = end - start;
  const y = new Int32Array(count);
  for (let i = 0; i < count; i++) y[i] = data.y[order[start + i]];
  const heap = wasmHeap();
  /** Writes batch examples [from, from + n) into x and their one-hot labels into a zeroed oneHot. */
  const gather = (from: number, n: number, x: Float32Array, oneHot: Float32Array) => {
    for (let k = 0; k < n; k++) {
      const j = order[start + from + k];
      x.set(data.x.subarray(j * size, (j + 1) * size), k * size);
      oneHot[k * numClasses + y[from + k]] = 1;
    }
  };
  // Made here, outside the caller's tidy, so that no tidy disposes them.
  const reused =
    heap && options.reuseTensors && count >= batchSize
      ? {
          xs: tf.zeros([batchSize, ...data.exampleShape], 'float32'),
          oneHot: tf.zeros([batchSize, numClasses], 'float32') as tf.Tensor2D,
        }
      : null;
  return {
    batches: Math.ceil(count / batchSize),
    count,
    labels: tf.tensor1d(y, 'int32'),
    reused,
    batch(i) {
      const from = i * batchSize;
      const n = Math.min(batchSize, count - from);
      const xShape = [n, ...data.exampleShape];
      if (heap && reused && n === batchSize) {
        const oneHot = heap.typedArrayFromHeap(reused.oneHot).fill(0);
        gather(from, n, heap.typedArrayFromHeap(reused.xs), oneHot);
        return reused;
      }
      if (heap) {
        // Allocate both first: an allocation may grow (and detach) the heap, so the views are taken after.
        const xInfo = heap.makeOutput(xShape, 'float32');
        const oneHotInfo = heap.makeOutput([n, numClasses], 'float32');
        const oneHot = heap.typedArrayFromHeap(oneHotInfo).fill(0);
        gather(from, n, heap.typedArrayFromHeap(xInfo), oneHot);
        return {
          xs: tf.engine().makeTensorFromTensorInfo(xInfo),
          oneHot: tf.engine().makeTensorFromTensorInfo(oneHotInfo) as tf.Tensor2D,
        };
      }
      const x = new Float32Array(n * size);
      const oneHot = new Float32Array(n * numClasses);
      gather(from, n, x, oneHot);
      return { xs: tf.tensor(x, xShape, 'float32'), oneHot: tf.tensor2d(oneHot, [n, numClasses], 'float32') };
    },
  };
}

/** Frees a run's tensors. */
export function disposeBatchRun(run: BatchRun): void {
  run.labels.dispose();
  if (run.reused) tf.dispose([run.reused.xs, run.reused.oneHot]);
}
