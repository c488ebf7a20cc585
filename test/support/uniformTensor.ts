import * as tf from '@tensorflow/tfjs-core';
import { createRng } from '../../shared/data/random';

/** A float32 tensor of `shape` with values uniform in [-scale, scale), reproducible from `seed`. */
export function uniformTensor(shape: number[], seed: number, scale = 1): tf.Tensor {
  const rng = createRng(seed);
  const size = shape.reduce((a, b) => a * b, 1);
  return tf.tensor(
    Float32Array.from({ length: size }, () => (rng() - 0.5) * 2 * scale),
    shape,
    'float32',
  );
}
