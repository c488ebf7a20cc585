import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import type { NamedTensor } from '../codec/tensors';
import type { Dataset } from '../data/dataset';
import { createRng, permutation } from '../data/random';
import { TributaryError } from '../errors';
import type { TrainConfig } from '../schemas/jobSpec';
import { batchRunLength, disposeBatchRun, layOutBatchRun } from './batchRun';
import { assertDatasetFitsModel, modelNumClasses } from './datasetTensors';
import { createTrainStep, type GradientPath, type StepOutputs } from './trainStep';
import { takeTrainingTurn } from './trainingTurns';
import { weightName } from './weights';

/** What one round of local training did. */
export interface TrainResult {
  /** Examples in the local dataset (the client's weight in FedAvg). */
  numExamples: number;
  /** Mean cross-entropy over the last epoch, measured on each batch before its update (without the proximal term). */
  loss: number;
  /** Training accuracy over the last epoch, measured the same way. */
  accuracy: number;
  /** Examples processed per second, over all epochs. */
  samplesPerSecond: number;
  /** How gradients were computed: layer by layer (the built-in layer kinds) or by TF.js autodiff. */
  gradients: GradientPath;
}

/** Tuning of trainLocal that does not change its results. */
export interface TrainOptions {
  /**
   * Bytes of examples (features and one-hot labels) per run: the batches whose step outputs are kept on the
   * backend before the run's loss and accuracy are summed. @default 32 MiB
   */
  maxRunBytes?: number;
}

/** How long training may hold the event loop before it yields, so sockets keep answering pings. */
const YIELD_EVERY_MS = 50;

const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

/** The global weights matching the model's trainable weights, by variable, as tensors the caller disposes. */
function proximalAnchors(
  model: LayersModel,
  globalWeights: readonly NamedTensor[] | undefined,
): Map<tf.Variable, tf.Tensor> {
  if (!globalWeights) {
    throw new TributaryError(
      'JOB_SPEC_INVALID',
      'FedProx training (proximalMu > 0) needs the global weights to stay close to; none were given.',
    );
  }
  const byName = new Map(globalWeights.map((t) => [t.name, t]));
  const checked = model.trainableWeights.map((w) => {
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
    return [w.read() as tf.Variable, g] as const;
  });
  return new Map(checked.map(([v, g]) => [v, tf.tensor(g.data, g.shape, 'float32')]));
}

/** Adds a run's loss (−Σ log of the clipped label probabilities) and correct predictions to the totals. */
function addRunMetrics(
  totals: [tf.Scalar, tf.Scalar],
  outputs: readonly StepOutputs[],
  labels: tf.Tensor1D,
): [tf.Scalar, tf.Scalar] {
  return tf.tidy(() => {
    const clipped = tf.concat(outputs.map((o) => o.clipped));
    const predicted = tf.argMax(tf.concat(outputs.map((o) => o.probs)), 1);
    const loss = tf.neg(tf.sum(tf.log(clipped)));
    const correct = tf.sum(tf.cast(tf.equal(predicted, labels), 'float32'));
    return [tf.add(totals[0], loss), tf.add(totals[1], correct)] as [tf.Scalar, tf.Scalar];
  });
}

/**
 * Local training for one federated round: minibatch SGD (learning rate `config.learningRate`) for
 * `config.localEpochs` epochs over a seeded shuffle of the data, minimising sparse categorical
 * cross-entropy plus, when `config.proximalMu` > 0, the FedProx term (mu/2)·Σ‖w − w_global‖²
 * (Li et al., 2020) over the trainable weights.
 *
 * Each step is one fused update inside tidy (`createTrainStep`: hand-written layer gradients for the
 * built-in layer kinds, optimizer.minimize otherwise). Each epoch's shuffle is cut into runs of whole
 * batches of at most `options.maxRunBytes` (`layOutBatchRun`); each batch's examples are gathered from the
 * dataset into the backend's memory (on wasm, straight into its heap). The loss and accuracy stay on the backend until the end:
 * nothing is read back per batch. No tensors outlive the call. Trainings in one process take turns,
 * each starting in an event-loop turn of its own (trainingTurns.ts).
 */
export async function trainLocal(
  model: LayersModel,
  data: Dataset,
  config: TrainConfig,
  globalWeights?: readonly NamedTensor[],
  options: TrainOptions = {},
): Promise<TrainResult> {
  assertDatasetFitsModel(model, data);
  if (!(config.batchSize >= 1) || !(config.localEpochs >= 1) || !(config.learningRate > 0)) {
    throw new TributaryError(
      'JOB_SPEC_INVALID',
      `Training needs batchSize >= 1, localEpochs >= 1 and learningRate > 0; got ${config.batchSize}, ${config.localEpochs}, ${config.learningRate}.`,
    );
  }
  const release = await takeTrainingTurn();
  try {
    return await trainInTurn(model, data, config, globalWeights, options);
  } finally {
    release();
  }
}

async function trainInTurn(
  model: LayersModel,
  data: Dataset,
  config: TrainConfig,
  globalWeights: readonly NamedTensor[] | undefined,
  options: TrainOptions,
): Promise<TrainResult> {
  const numClasses = modelNumClasses(model);
  const mu = config.proximalMu;
  const anchors = mu > 0 ? proximalAnchors(model, globalWeights) : new Map<tf.Variable, tf.Tensor>();
  const step = createTrainStep(model, {
    learningRate: config.learningRate,
    proximal: mu > 0 ? { mu, anchors } : undefined,
  });
  const runLength = batchRunLength(data.exampleShape, numClasses, config.batchSize, options.maxRunBytes);
  const rng = createRng(config.seed);
  const started = performance.now();
  let lastYield = started;
  let totals: [tf.Scalar, tf.Scalar] | undefined;
  let lossSum = 0;
  let correct = 0;
  try {
    for (let epoch = 0; epoch < config.localEpochs; epoch++) {
      const order = permutation(data.count, rng);
      // The reported loss and accuracy are the last epoch's.
      if (totals) tf.dispose(totals);
      totals = [tf.scalar(0), tf.scalar(0)];
      for (let runStart = 0; runStart < data.count; runStart += runLength) {
        const run = layOutBatchRun(
          data,
          order,
          runStart,
          Math.min(runStart + runLength, data.count),
          config.batchSize,
          numClasses,
          // The layerwise plan never packs the features themselves (see BatchRunOptions.reuseTensors).
          { reuseTensors: step.gradients === 'layerwise' },
        );
        const outputs: StepOutputs[] = [];
        try {
          for (let b = 0; b < run.batches; b++) {
            outputs.push(
              tf.tidy(() => {
                const { xs, oneHot } = run.batch(b);
                return step.run(xs, oneHot);
              }),
            );
            if (performance.now() - lastYield > YIELD_EVERY_MS) {
              await yieldToEventLoop();
              lastYield = performance.now();
            }
          }
          const previous = totals;
          totals = addRunMetrics(previous, outputs, run.labels);
          tf.dispose(previous);
        } finally {
          tf.dispose(outputs.flatMap((o) => [o.clipped, o.probs]));
          disposeBatchRun(run);
        }
      }
    }
    lossSum = (await (totals as [tf.Scalar, tf.Scalar])[0].data())[0];
    correct = (await (totals as [tf.Scalar, tf.Scalar])[1].data())[0];
  } finally {
    if (totals) tf.dispose(totals);
    step.dispose();
    tf.dispose([...anchors.values()]);
  }
  const seconds = (performance.now() - started) / 1000;
  return {
    numExamples: data.count,
    loss: lossSum / data.count,
    accuracy: correct / data.count,
    samplesPerSecond: (data.count * config.localEpochs) / Math.max(seconds, 1e-9),
    gradients: step.gradients,
  };
}
