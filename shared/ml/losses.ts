import * as tf from '@tensorflow/tfjs-core';

/** Probabilities are clipped to [EPSILON, 1 − EPSILON] before the log, as Keras does. */
const EPSILON = 1e-7;

/** Per-example cross-entropy −log p[label] of probabilities [n, k] against int32 labels [n]. */
export function sparseCategoricalCrossEntropy(probs: tf.Tensor, labels: tf.Tensor1D, numClasses: number): tf.Tensor1D {
  return tf.tidy(() => {
    const picked = tf.sum(tf.mul(tf.oneHot(labels, numClasses), probs), 1);
    return tf.neg(tf.log(tf.clipByValue(picked, EPSILON, 1 - EPSILON))) as tf.Tensor1D;
  });
}

/** Number of rows whose most probable class equals the label, as a float32 scalar. */
export function correctCount(probs: tf.Tensor, labels: tf.Tensor1D): tf.Scalar {
  return tf.tidy(() => tf.sum(tf.cast(tf.equal(tf.argMax(probs, 1), labels), 'float32')));
}
