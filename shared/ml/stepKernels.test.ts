import * as tf from '@tensorflow/tfjs-core';
import { selectBackend } from './backend';
import { CROSS_ENTROPY_GRAD, hasStepKernels, ROTATED_FILTER } from './stepKernels';
import { uniformTensor as uniform } from '../../test/support/uniformTensor';

/** Largest |a − b|, with NaN matching NaN only (any other NaN makes it Infinity). */
function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  expect(a.shape).toEqual(b.shape);
  const [x, y] = [a.dataSync(), b.dataSync()];
  let worst = 0;
  for (let i = 0; i < x.length; i++) {
    if (Number.isNaN(x[i]) || Number.isNaN(y[i])) {
      if (!(Number.isNaN(x[i]) && Number.isNaN(y[i]))) return Number.POSITIVE_INFINITY;
      continue;
    }
    worst = Math.max(worst, Math.abs(x[i] - y[i]));
  }
  return worst;
}

describe.each(['wasm', 'cpu'] as const)('step kernels on %s', (backend) => {
  beforeAll(async () => {
    await selectBackend(backend);
  });

  it('are registered by selectBackend', () => {
    expect(hasStepKernels(backend)).toBe(true);
    expect(hasStepKernels('no-such-backend')).toBe(false);
  });

  it('CROSS_ENTROPY_GRAD equals the clipped label probability and the masked, scaled gradient of the ops', () => {
    tf.tidy(() => {
      const n = 9;
      const k = 5;
      // Rows 0 and 1 are confident enough for the clip to clamp the label's probability (to 1 − 1e-7 and to
      // 1e-7), row 2 holds a NaN, the others are ordinary.
      const logits = uniform([n, k], 3, 4).bufferSync();
      logits.set(40, 0, 1);
      logits.set(-40, 1, 2);
      logits.set(40, 1, 3);
      logits.set(Number.NaN, 2, 0);
      const labels = Int32Array.from({ length: n }, (_, i) => [1, 2][i] ?? i % k);
      const oneHot = tf.cast(tf.oneHot(tf.tensor1d(labels, 'int32'), k), 'float32') as tf.Tensor2D;
      const scale = 0.5 / n;
      const probs = tf.softmax(logits.toTensor());
      const [clipped, dLogits, sums] = tf
        .engine()
        .runKernel(CROSS_ENTROPY_GRAD, { probs, oneHot }, { scale }) as tf.Tensor[];
      const picked = tf.sum(tf.mul(probs, oneHot), 1, true);
      const expectedClipped = tf.clipByValue(picked, 1e-7, 1 - 1e-7);
      const rowScale = tf.mul(tf.cast(tf.equal(expectedClipped, picked), 'float32'), scale);
      const expectedD = tf.mul(tf.sub(probs, oneHot), rowScale);
      // The NaN row's clipped probability is NaN, as on cpu and TensorFlow (wasm's ClipByValue turns NaN into
      // the lower bound, a finite loss for a step that makes every weight NaN); the other rows are the ops', bit for bit.
      const rowsWithout2 = (t: tf.Tensor) =>
        tf.concat([tf.slice(t, [0, 0], [2, -1]), tf.slice(t, [3, 0], [n - 3, -1])]);
      expect(maxAbsDiff(rowsWithout2(clipped), rowsWithout2(expectedClipped))).toBe(0);
      expect(Number.isNaN(clipped.dataSync()[2])).toBe(true);
      expect(maxAbsDiff(dLogits, expectedD)).toBe(0);
      // The clamped rows pass no gradient; the NaN row stays NaN (it is not silently zeroed).
      const rows = dLogits.arraySync() as number[][];
      expect(rows[0].every((v) => v === 0)).toBe(true);
      expect(rows[1].every((v) => v === 0)).toBe(true);
      expect(rows[3].some((v) => v !== 0)).toBe(true);
      expect(Number.isNaN(rows[2][0])).toBe(true);
      // Column sums: NaN propagates into every column here; without the NaN row they are the batch sums.
      expect(sums.shape).toEqual([k]);
      expect(Array.from(sums.dataSync()).every(Number.isNaN)).toBe(true);
    });
  });

  it('CROSS_ENTROPY_GRAD sums the gradient per class as tf.sum does', () => {
    tf.tidy(() => {
      const probs = tf.softmax(uniform([32, 10], 5, 3));
      const oneHot = tf.cast(
        tf.oneHot(
          tf.tensor1d(
            Int32Array.from({ length: 32 }, (_, i) => (i * 7) % 10),
            'int32',
          ),
          10,
        ),
        'float32',
      );
      const [, dLogits, sums] = tf
        .engine()
        .runKernel(CROSS_ENTROPY_GRAD, { probs, oneHot }, { scale: 0.05 / 32 }) as tf.Tensor[];
      expect(maxAbsDiff(sums, tf.sum(dLogits, 0))).toBeLessThan(1e-9);
      expect(tf.max(tf.abs(sums)).dataSync()[0]).toBeGreaterThan(1e-4);
    });
  });

  it('ROTATED_FILTER equals the filter reversed in space with its channel axes swapped', () => {
    tf.tidy(() => {
      for (const shape of [
        [5, 5, 8, 16],
        [2, 3, 1, 4],
      ]) {
        const filter = uniform(shape, 9) as tf.Tensor4D;
        const rotated = tf.engine().runKernel(ROTATED_FILTER, { filter }) as tf.Tensor;
        expect(maxAbsDiff(rotated, tf.transpose(tf.reverse(filter, [0, 1]), [0, 1, 3, 2]))).toBe(0);
      }
    });
  });

  it('reject inputs of the wrong shape or dtype with a typed error', () => {
    tf.tidy(() => {
      const run =
        (name: string, inputs: tf.NamedTensorMap, attrs = {}) =>
        () =>
          tf.engine().runKernel(name, inputs, attrs);
      expect(run(CROSS_ENTROPY_GRAD, { probs: tf.zeros([2, 3]), oneHot: tf.zeros([2, 4]) }, { scale: 1 })).toThrow(
        expect.objectContaining({ code: 'MODEL_SHAPE_MISMATCH' }),
      );
      expect(run(ROTATED_FILTER, { filter: tf.zeros([2, 3, 4]) })).toThrow(
        expect.objectContaining({ code: 'MODEL_SHAPE_MISMATCH' }),
      );
      expect(run(ROTATED_FILTER, { filter: tf.zeros([2, 3, 4, 1], 'int32') })).toThrow(
        expect.objectContaining({ code: 'MODEL_SHAPE_MISMATCH' }),
      );
    });
  });
});
