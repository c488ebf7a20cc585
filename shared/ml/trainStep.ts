import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { type LayerForward, planLayerwise } from './layerwiseGradients';
import { hasStepKernels, CROSS_ENTROPY_GRAD, type CrossEntropyGradAttrs } from './stepKernels';

/** Probabilities are clipped to [EPSILON, 1 − EPSILON] before the log, as Keras does (see losses.ts). */
const EPSILON = 1e-7;

/** How the step computes gradients: hand-written per layer, or TF.js autodiff for any other model. */
export type GradientPath = 'layerwise' | 'autodiff';

/**
 * What a step reports about its batch, for the epoch's metrics; computed before the update. (A type,
 * not an interface, so that tidy accepts it as a tensor container.)
 */
export type StepOutputs = {
  /** Each example's predicted probability of its label, clipped, [n, 1]: the loss is −Σ log of these. */
  clipped: tf.Tensor2D;
  /** The predicted class probabilities [n, numClasses] (accuracy is their argmax, taken once per run). */
  probs: tf.Tensor2D;
};

/** One minibatch SGD step that updates the model's variables in place. */
export interface TrainStep {
  readonly gradients: GradientPath;
  /** Why the layerwise path was not taken, when it was not. */
  readonly unsupported?: string;
  /** Runs one step on a batch; call inside tidy and keep what it returns. */
  run(xs: tf.Tensor, oneHot: tf.Tensor2D): StepOutputs;
  /** Frees the step's constants. */
  dispose(): void;
}

/** Options of a step: SGD's learning rate, and the FedProx term (mu/2)·Σ‖w − anchor‖² when mu > 0. */
export interface TrainStepOptions {
  learningRate: number;
  /** Use TF.js autodiff even where the layerwise path applies (for comparisons). @default false */
  autodiff?: boolean;
  proximal?: { mu: number; anchors: ReadonlyMap<tf.Variable, tf.Tensor> };
}

/** The probability of each example's label, [n, 1], as is and clipped. */
function clippedLabelProbability(probs: tf.Tensor, oneHot: tf.Tensor2D): { picked: tf.Tensor2D; clipped: tf.Tensor2D } {
  const picked = tf.sum(tf.mul(probs, oneHot), 1, true) as tf.Tensor2D;
  return { picked, clipped: tf.clipByValue(picked, EPSILON, 1 - EPSILON) };
}

/** Scalars by value, created once per step (each literal operand would otherwise be a new upload). */
function scalarCache(): { get(v: number): tf.Scalar; dispose(): void } {
  const cache = new Map<number, tf.Scalar>();
  return {
    get(v) {
      let s = cache.get(v);
      if (!s) {
        s = tf.keep(tf.scalar(v));
        cache.set(v, s);
      }
      return s;
    },
    dispose: () => tf.dispose([...cache.values()]),
  };
}

/** The softmax of the logits, the clipped label probabilities, and the loss gradient at the logits times `scale`. */
interface LossGradient extends StepOutputs {
  dLogits: tf.Tensor2D;
  /** dLogits summed over the batch, when computed on the way (the output layer's bias step). */
  dLogitsSums?: tf.Tensor1D;
}

/** The loss gradient with TF.js ops. */
function lossGradient(logits: tf.Tensor2D, oneHot: tf.Tensor2D, scale: tf.Scalar): LossGradient {
  const probs = tf.softmax(logits) as tf.Tensor2D;
  const { picked, clipped } = clippedLabelProbability(probs, oneHot);
  // d(mean −log clip(p_label))/d logits = (p − onehot)/n where the clip passes p_label, 0 where it clamps it.
  const rowScale = tf.mul(tf.cast(tf.equal(clipped, picked), 'float32'), scale);
  return { probs, clipped, dLogits: tf.mul(tf.sub(probs, oneHot), rowScale) };
}

/** The same with the backend's softmax and one CROSS_ENTROPY_GRAD kernel (wasm, cpu) instead of nine more, with the bias step. */
function lossGradientFused(logits: tf.Tensor2D, oneHot: tf.Tensor2D, scale: number): LossGradient {
  const probs = tf.softmax(logits) as tf.Tensor2D;
  const attrs: CrossEntropyGradAttrs = { scale };
  const [clipped, dLogits, dLogitsSums] = tf
    .engine()
    .runKernel(CROSS_ENTROPY_GRAD, { probs, oneHot }, attrs as unknown as tf.NamedAttrMap) as [
    tf.Tensor2D,
    tf.Tensor2D,
    tf.Tensor1D,
  ];
  return { probs, clipped, dLogits, dLogitsSums };
}

/**
 * The layerwise step: forward through the plan, softmax cross-entropy differentiated in one piece,
 * backward layer by layer, then w ← w − lr·g for every variable (with FedProx, w ← w − lr·(g +
 * mu·(w − anchor))). The gradient of the mean loss is scaled by lr once, at the logits, so each
 * variable's update is one subtraction.
 */
function layerwiseStep(model: LayersModel, options: TrainStepOptions): TrainStep | string {
  const plan = planLayerwise(model);
  if ('unsupported' in plan) return plan.unsupported;
  const lr = options.learningRate;
  const mu = options.proximal?.mu ?? 0;
  const scalars = scalarCache();
  const anchors = new Map<tf.Variable, tf.Tensor>();
  if (mu > 0) {
    for (const v of plan.variables) {
      const anchor = options.proximal?.anchors.get(v);
      if (!anchor) throw new Error(`no FedProx anchor for variable ${v.name}`);
      anchors.set(v, anchor);
    }
  }
  const firstTrainable = plan.layers.findIndex((l) => l.variables.length > 0);
  const fusedLoss = hasStepKernels(tf.getBackend());
  return {
    gradients: 'layerwise',
    run(xs, oneHot) {
      const n = xs.shape[0];
      const passes: LayerForward[] = [];
      let h = xs;
      for (const layer of plan.layers) {
        const pass = layer.forward(h);
        passes.push(pass);
        h = pass.y;
      }
      const { probs, clipped, dLogits, dLogitsSums } = fusedLoss
        ? lossGradientFused(h as tf.Tensor2D, oneHot, lr / n)
        : lossGradient(h as tf.Tensor2D, oneHot, scalars.get(lr / n));
      let dy: tf.Tensor = dLogits;
      const steps = new Map<tf.Variable, tf.Tensor>();
      let dyChannelSums: tf.Tensor1D | undefined = dLogitsSums;
      for (let i = plan.layers.length - 1; i >= firstTrainable; i--) {
        const { dx, grads, dxChannelSums } = passes[i].backward(dy, i > firstTrainable, dyChannelSums);
        plan.layers[i].variables.forEach((v, k) => steps.set(v, grads[k]));
        if (dx) dy = dx;
        dyChannelSums = dxChannelSums;
      }
      // Every gradient is taken before any variable changes.
      for (const [v, step] of steps) {
        const anchor = anchors.get(v);
        // FedProx adds mu·(w − anchor) to the gradient (the derivative of (mu/2)·‖w − anchor‖²).
        const delta = anchor ? tf.add(step, tf.mul(tf.sub(v, anchor), scalars.get(lr * mu))) : step;
        v.assign(tf.sub(v, delta));
      }
      return { clipped, probs };
    },
    dispose: () => scalars.dispose(),
  };
}

/** The generic step: the model's own forward pass, TF.js autodiff, optimizer.minimize (SGD). */
function autodiffStep(model: LayersModel, options: TrainStepOptions, unsupported: string): TrainStep {
  const variables = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const optimizer = tf.train.sgd(options.learningRate);
  const mu = options.proximal?.mu ?? 0;
  const anchors = variables.map((v) => options.proximal?.anchors.get(v));
  return {
    gradients: 'autodiff',
    unsupported,
    run(xs, oneHot) {
      let outputs: StepOutputs | undefined;
      optimizer.minimize(
        () => {
          const probs = model.apply(xs, { training: true }) as tf.Tensor2D;
          const { clipped } = clippedLabelProbability(probs, oneHot);
          // Kept: minimize disposes what its function creates, except the loss.
          outputs = { clipped: tf.keep(clipped), probs: tf.keep(probs) };
          const ce = tf.neg(tf.mean(tf.log(clipped))) as tf.Scalar;
          if (mu === 0) return ce;
          const distance = tf.addN(
            variables.map((v, i) => tf.sum(tf.squaredDifference(v, anchors[i] as tf.Tensor))),
          ) as tf.Scalar;
          return tf.add(ce, tf.mul(distance, mu / 2)) as tf.Scalar;
        },
        false,
        variables,
      );
      return outputs as StepOutputs;
    },
    dispose: () => optimizer.dispose(),
  };
}

/**
 * The SGD step for a model: layerwise when `planLayerwise` supports the model (the built-ins do),
 * else autodiff. Both minimise mean sparse categorical cross-entropy on softmax outputs, with the
 * probability of the label clipped to [1e-7, 1 − 1e-7], plus the FedProx term when mu > 0.
 */
export function createTrainStep(model: LayersModel, options: TrainStepOptions): TrainStep {
  const layerwise = options.autodiff ? 'autodiff was requested' : layerwiseStep(model, options);
  return typeof layerwise === 'string' ? autodiffStep(model, options, layerwise) : layerwise;
}
