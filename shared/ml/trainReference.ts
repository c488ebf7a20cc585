import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import type { NamedTensor } from '../codec/tensors';
import type { Dataset } from '../data/dataset';
import { createRng, permutation } from '../data/random';
import { TributaryError } from '../errors';
import type { TrainConfig } from '../schemas/jobSpec';
import { assertDatasetFitsModel, batchTensors, modelNumClasses } from './datasetTensors';
import { correctCount, sparseCategoricalCrossEntropy } from './losses';
import { weightName } from './weights';

/** What the reference loop reports (TrainResult without `gradients`). */
export interface ReferenceTrainResult {
  /** Examples in the local dataset (the client's weight in FedAvg). */
  numExamples: number;
  /** Mean cross-entropy over the last epoch, measured on each batch before its update (without the proximal term). */
  loss: number;
  /** Training accuracy over the last epoch, measured the same way. */
  accuracy: number;
  /** Examples processed per second, over all epochs. */
  samplesPerSecond: number;
}

/** How long training may hold the event loop before it yields, so sockets keep answering pings. */
const YIELD_EVERY_MS = 50;

const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

/** The global weights matching the model's trainable weights, as tensors the caller disposes. */
function proximalAnchors(model: LayersModel, globalWeights: readonly NamedTensor[] | undefined): tf.Tensor[] {
  if (!globalWeights) {
    throw new TributaryError(
      'JOB_SPEC_INVALID',
      'FedProx training (proximalMu > 0) needs the global weights to stay close to; none were given.',
    );
  }
  const byName = new Map(globalWeights.map((t) => [t.name, t]));
  return model.trainableWeights.map((w) => {
    const name = weightName(w);
    const g = byName.get(name);
    if (!g)
      throw new TributaryError(
        'MODEL_SHAPE_MISMATCH',
        `The global weights lack ${JSON.stringify(name)}, needed for the proximal term.`,
      );
    if (g.shape.length !== w.shape.length || g.shape.some((d, i) => d !== w.shape[i])) {
      throw new TributaryError(
        'MODEL_SHAPE_MISMATCH',
        `Global weight ${JSON.stringify(name)} has shape [${g.shape}]; the model's is [${w.shape}].`,
      );
    }
    return tf.tensor(g.data, g.shape, 'float32');
  });
}

/**
 * The per-batch training loop trainLocal used before its fused step (main at aa00f67), unchanged but for
 * its name: the reference the tests compare trainLocal with (same seed, same updates, within float
 * tolerance). Not for production use: it uploads every batch from JavaScript and differentiates
 * through TF.js's tape.
 *
 * Local training for one federated round: minibatch SGD (learning rate `config.learningRate`) for
 * `config.localEpochs` epochs over a seeded shuffle of the data, minimising sparse categorical
 * cross-entropy plus, when `config.proximalMu` > 0, the FedProx term (mu/2)·Σ‖w − w_global‖²
 * (Li et al., 2020) over the trainable weights. Every step runs inside tidy; no tensors outlive it.
 */
export async function trainLocalReference(
  model: LayersModel,
  data: Dataset,
  config: TrainConfig,
  globalWeights?: readonly NamedTensor[],
): Promise<ReferenceTrainResult> {
  assertDatasetFitsModel(model, data);
  if (!(config.batchSize >= 1) || !(config.localEpochs >= 1) || !(config.learningRate > 0)) {
    throw new TributaryError(
      'JOB_SPEC_INVALID',
      `Training needs batchSize >= 1, localEpochs >= 1 and learningRate > 0; got ${config.batchSize}, ${config.localEpochs}, ${config.learningRate}.`,
    );
  }
  const numClasses = modelNumClasses(model);
  const mu = config.proximalMu;
  const variables = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const anchors = mu > 0 ? proximalAnchors(model, globalWeights) : [];
  const optimizer = tf.train.sgd(config.learningRate);
  const rng = createRng(config.seed);
  const started = performance.now();
  let lastYield = started;
  let lossSum = 0;
  let correct = 0;
  // Running sums stay on the backend and are read once at the end: a read per batch would force a device sync.
  let lossTotal: tf.Scalar | undefined;
  let correctTotal: tf.Scalar | undefined;
  try {
    for (let epoch = 0; epoch < config.localEpochs; epoch++) {
      const order = permutation(data.count, rng);
      tf.dispose([lossTotal, correctTotal].filter((t): t is tf.Scalar => t !== undefined));
      lossTotal = tf.scalar(0);
      correctTotal = tf.scalar(0);
      for (let start = 0; start < data.count; start += config.batchSize) {
        const indices = order.subarray(start, Math.min(start + config.batchSize, data.count));
        const previous: tf.Scalar[] = [lossTotal, correctTotal];
        [lossTotal, correctTotal] = tf.tidy(() => {
          const { xs, ys } = batchTensors(data, indices);
          const kept: tf.Scalar[] = [];
          const { grads } = tf.variableGrads(() => {
            const probs = model.apply(xs, { training: true }) as tf.Tensor;
            const ce = tf.mean(sparseCategoricalCrossEntropy(probs, ys, numClasses)) as tf.Scalar;
            // Kept tensors escape every tidy, so they are disposed by hand below.
            kept.push(tf.keep(ce), tf.keep(correctCount(probs, ys)));
            if (mu === 0) return ce;
            const distance = tf.addN(variables.map((v, i) => tf.sum(tf.squaredDifference(v, anchors[i]))));
            return tf.add(ce, tf.mul(distance, mu / 2)) as tf.Scalar;
          }, variables);
          optimizer.applyGradients(grads);
          const [batchLoss, batchCorrect] = kept;
          const sums = [tf.add(previous[0], tf.mul(batchLoss, indices.length)), tf.add(previous[1], batchCorrect)] as [
            tf.Scalar,
            tf.Scalar,
          ];
          tf.dispose(kept);
          return sums;
        });
        tf.dispose(previous);
        if (performance.now() - lastYield > YIELD_EVERY_MS) {
          await yieldToEventLoop();
          lastYield = performance.now();
        }
      }
    }
    lossSum = (await (lossTotal as tf.Scalar).data())[0];
    correct = (await (correctTotal as tf.Scalar).data())[0];
  } finally {
    tf.dispose([lossTotal, correctTotal].filter((t): t is tf.Scalar => t !== undefined));
    optimizer.dispose();
    tf.dispose(anchors);
  }
  const seconds = (performance.now() - started) / 1000;
  return {
    numExamples: data.count,
    loss: lossSum / data.count,
    accuracy: correct / data.count,
    samplesPerSecond: (data.count * config.localEpochs) / Math.max(seconds, 1e-9),
  };
}
