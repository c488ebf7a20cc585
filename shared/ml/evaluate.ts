import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import type { Dataset } from '../data/dataset';
import { assertDatasetFitsModel, batchTensors, modelNumClasses } from './datasetTensors';
import { correctCount, sparseCategoricalCrossEntropy } from './losses';

/** Mean loss and accuracy of a model on a dataset. */
export interface EvaluateResult {
  /** Mean sparse categorical cross-entropy. */
  loss: number;
  accuracy: number;
  numExamples: number;
}

const YIELD_EVERY_MS = 50;

/** Evaluates the model on every example (inference mode, in batches of `batchSize`, default 256). */
export async function evaluateModel(model: LayersModel, data: Dataset, batchSize = 256): Promise<EvaluateResult> {
  assertDatasetFitsModel(model, data);
  const numClasses = modelNumClasses(model);
  const step = Math.max(1, Math.floor(batchSize));
  let lossTotal = tf.scalar(0);
  let correctTotal = tf.scalar(0);
  let lastYield = performance.now();
  try {
    for (let start = 0; start < data.count; start += step) {
      const end = Math.min(start + step, data.count);
      const [nextLoss, nextCorrect] = tf.tidy(() => {
        const { xs, ys } = batchTensors(data, start, end);
        const probs = model.apply(xs, { training: false }) as tf.Tensor;
        const loss = tf.sum(sparseCategoricalCrossEntropy(probs, ys, numClasses));
        return [tf.add(lossTotal, loss), tf.add(correctTotal, correctCount(probs, ys))];
      });
      tf.dispose([lossTotal, correctTotal]);
      lossTotal = nextLoss as tf.Scalar;
      correctTotal = nextCorrect as tf.Scalar;
      if (performance.now() - lastYield > YIELD_EVERY_MS) {
        // Let sockets and timers run between batches.
        await new Promise<void>((resolve) => setImmediate(resolve));
        lastYield = performance.now();
      }
    }
    const loss = (await lossTotal.data())[0];
    const correct = (await correctTotal.data())[0];
    return { loss: loss / data.count, accuracy: correct / data.count, numExamples: data.count };
  } finally {
    tf.dispose([lossTotal, correctTotal]);
  }
}
