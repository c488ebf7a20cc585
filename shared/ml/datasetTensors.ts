import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { type Dataset, exampleSize } from '../data/dataset';
import { TributaryError } from '../errors';

/** One batch of examples as tensors: xs [n, ...exampleShape] float32, ys [n] int32. */
export interface BatchTensors {
  xs: tf.Tensor;
  ys: tf.Tensor1D;
}

/** The examples at `indices` (or [start, end) when given two numbers) as tensors; the caller disposes them. */
export function batchTensors(data: Dataset, indices: ArrayLike<number>): BatchTensors;
export function batchTensors(data: Dataset, start: number, end: number): BatchTensors;
export function batchTensors(data: Dataset, a: ArrayLike<number> | number, b?: number): BatchTensors {
  const size = exampleSize(data.exampleShape);
  let x: Float32Array;
  let y: Int32Array;
  if (typeof a === 'number') {
    x = data.x.slice(a * size, (b as number) * size);
    y = data.y.slice(a, b);
  } else {
    x = new Float32Array(a.length * size);
    y = new Int32Array(a.length);
    for (let i = 0; i < a.length; i++) {
      const j = a[i];
      x.set(data.x.subarray(j * size, (j + 1) * size), i * size);
      y[i] = data.y[j];
    }
  }
  return { xs: tf.tensor(x, [y.length, ...data.exampleShape], 'float32'), ys: tf.tensor1d(y, 'int32') };
}

/** The number of classes a model predicts (its output width). */
export function modelNumClasses(model: LayersModel): number {
  const shape = model.outputs[0].shape;
  return shape[shape.length - 1] as number;
}

/** Checks that the dataset is non-empty, matches the model's input shape, and has labels in range. */
export function assertDatasetFitsModel(model: LayersModel, data: Dataset): void {
  if (data.count === 0) throw new TributaryError('DATA_FILE_EMPTY', 'The dataset has no examples.');
  const inShape = model.inputs[0].shape.slice(1);
  if (inShape.length !== data.exampleShape.length || inShape.some((d, i) => d !== null && d !== data.exampleShape[i])) {
    throw new TributaryError(
      'DATA_COLUMNS_MISMATCH',
      `Examples have shape [${data.exampleShape}]; the model takes [${inShape.map(String)}].`,
    );
  }
  if (data.x.length < data.count * exampleSize(data.exampleShape) || data.y.length < data.count) {
    throw new TributaryError(
      'DATA_COLUMNS_MISMATCH',
      `The dataset claims ${data.count} examples but its arrays are shorter.`,
    );
  }
  const numClasses = modelNumClasses(model);
  for (let i = 0; i < data.count; i++) {
    const label = data.y[i];
    if (label < 0 || label >= numClasses) {
      throw new TributaryError(
        'DATA_LABEL_OUT_OF_RANGE',
        `Example ${i + 1} has label ${label}; the model predicts classes [0, ${numClasses}).`,
      );
    }
  }
}
