import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel, SymbolicTensor } from '@tensorflow/tfjs-layers';
import { hasReluMaxPoolGrad, RELU_MAX_POOL_GRAD } from './maxPoolGrad';
import { hasStepKernels, ROTATED_FILTER } from './stepKernels';
import { weightName } from './weights';

/** Gradients of one layer's variables (in `variables` order) and, when asked for, of its input. */
export interface LayerGradients {
  dx: tf.Tensor | null;
  grads: tf.Tensor[];
  /** dx summed over all axes but the last, when the pass got it for free (the previous layer's bias gradient). */
  dxChannelSums?: tf.Tensor1D;
}

/** One layer's forward pass, holding what its backward pass needs. */
export interface LayerForward {
  y: tf.Tensor;
  /** `dyChannelSums`: the next layer's `dxChannelSums`, if it had them. */
  backward(dy: tf.Tensor, needInputGradient: boolean, dyChannelSums?: tf.Tensor1D): LayerGradients;
}

/** A layer of a plan: its trainable variables and its forward pass. */
export interface PlannedLayer {
  readonly name: string;
  readonly variables: readonly tf.Variable[];
  forward(x: tf.Tensor): LayerForward;
}

/**
 * A Sequential model as plain tensor ops with hand-written gradients: every layer up to the output
 * layer's logits. The output layer is a Dense layer whose softmax is left to the loss, which differentiates
 * softmax and cross-entropy together.
 */
export interface LayerwisePlan {
  readonly layers: readonly PlannedLayer[];
  /** Every trainable variable of the model, each once. */
  readonly variables: readonly tf.Variable[];
}

/** Why a model cannot be planned; it then trains through TF.js autodiff instead. */
export interface Unplannable {
  unsupported: string;
}

type Config = Record<string, unknown>;
type Activation = 'relu' | 'linear';
type Layer = LayersModel['layers'][number];

function pair(v: unknown): [number, number] | null {
  if (typeof v === 'number') return [v, v];
  if (Array.isArray(v) && v.length === 2 && v.every((d) => typeof d === 'number')) return [v[0], v[1]];
  return null;
}

function activationOf(config: Config): Activation | null {
  const a = config.activation ?? 'linear';
  return a === 'relu' || a === 'linear' ? a : null;
}

function inputRank(layer: Layer): number {
  return (layer.input as SymbolicTensor).shape.length;
}

/** The layer's kernel and (optional) bias variables, or null when it has anything else trainable. */
function kernelAndBias(layer: Layer, useBias: boolean): { kernel: tf.Variable; bias: tf.Variable | null } | null {
  const byRole = new Map(layer.trainableWeights.map((w) => [weightName(w).split('/').pop(), w.read() as tf.Variable]));
  const kernel = byRole.get('kernel');
  const bias = byRole.get('bias') ?? null;
  if (!kernel || byRole.size !== (useBias ? 2 : 1) || (useBias && !bias)) return null;
  return { kernel, bias };
}

/**
 * dy through the activation, from the layer's output y: for ReLU y ≥ 0 and y > 0 exactly where its
 * input was, so sign(y) is its derivative (one op; tfjs-node runs `step` as five). (A typed-array kernel
 * doing this and the bias sums in one pass measured no faster on wasm: JavaScript loops over 4k values
 * cost what the three SIMD kernels and their dispatch do.)
 */
function throughActivation(dy: tf.Tensor, y: tf.Tensor, activation: Activation): tf.Tensor {
  if (activation !== 'relu') return dy;
  // wasm's Sign is a scalar loop ~30x slower than its Step; for y ≥ 0 they agree.
  return tf.mul(dy, tf.getBackend() === 'wasm' ? tf.step(y) : tf.sign(y));
}

/** The bias gradient: per-channel sums of dPre, or `known` when a kernel computed them on the way. */
function biasGradient(dPre: tf.Tensor, known: tf.Tensor1D | undefined): tf.Tensor {
  return known ?? tf.sum(dPre, [...Array(dPre.rank - 1).keys()]);
}

/**
 * The products and convolutions a backward pass needs. Two formulations of the same values: the
 * backend's own kernels, and, for wasm, ones that land on XNNPACK's fast paths (its matmul is fast
 * only without transposes, and it has fast convolutions but slow backprop kernels).
 */
interface GradientKernels {
  /** x·w of a Dense layer's forward pass, and xᵀ when computing it made one (its kernel gradient xᵀ·dy reuses it). */
  denseProduct(x: tf.Tensor2D, w: tf.Tensor2D): { y: tf.Tensor2D; xT: tf.Tensor2D | null };
  /** aᵀ·b */
  matMulTransposeA(a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor2D;
  /** a·bᵀ */
  matMulTransposeB(a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor2D;
  /**
   * ∂L/∂filter of a stride-`strides` convolution with `pad`, from its input x and ∂L/∂output dy; dy laid
   * out [outH, outW, batch, c] when `dyBatchInside` (only where `takesBatchInsideDy`).
   */
  convFilter(
    x: tf.Tensor4D,
    dy: tf.Tensor4D,
    filterShape: number[],
    strides: [number, number],
    pad: Padding,
    dyBatchInside?: boolean,
  ): tf.Tensor4D;
  /** Whether convFilter takes dy as [outH, outW, batch, c] for these strides (saving a transpose there). */
  takesBatchInsideDy(strides: [number, number]): boolean;
  /** ∂L/∂input of the same convolution, from dy and the filter. */
  convInput(
    dy: tf.Tensor4D,
    filter: tf.Tensor4D,
    xShape: number[],
    strides: [number, number],
    pad: Padding,
  ): tf.Tensor4D;
}

type Padding = 'valid' | 'same';

/** The kernels TF.js's own gradient functions call (our typed-array Conv2DBackpropFilter on wasm and cpu). */
const backendKernels: GradientKernels = {
  denseProduct: (x, w) => ({ y: tf.matMul(x, w), xT: null }),
  matMulTransposeA: (a, b) => tf.matMul(a, b, true, false),
  matMulTransposeB: (a, b) => tf.matMul(a, b, false, true),
  convFilter: (x, dy, filterShape, strides, pad) =>
    tf
      .engine()
      .runKernel('Conv2DBackpropFilter', { x, dy }, { strides, pad, dataFormat: 'NHWC', filterShape }) as tf.Tensor4D,
  convInput: (dy, filter, xShape, strides, pad) =>
    tf.conv2dTranspose(dy, filter, xShape as [number, number, number, number], strides, pad),
  takesBatchInsideDy: () => false,
};

/** Padding before and after along one spatial axis of a stride-1 convolution (TF's 'same' puts the odd one after). */
function samePadding(kernel: number, pad: Padding): [number, number] {
  if (pad === 'valid') return [0, 0];
  const before = Math.floor((kernel - 1) / 2);
  return [before, kernel - 1 - before];
}

/**
 * wasm: explicit transposes before each product, and the stride-1 convolution gradients as forward
 * convolutions. XNNPACK packs a product's right operand (and a convolution's filter) into its own
 * layout whenever it gets a new tensor there, and TF.js's wasm backend caches that packing per tensor;
 * a weight that changes every step is a new tensor every step. Packing costs ~3 ns per value, as much
 * as the arithmetic of a 32-row product: for x[32, 784]·w[784, 128] it is half the time. So a wide
 * Dense layer (more than twice as many units as rows in the batch) computes (wᵀ·xᵀ)ᵀ, which packs the
 * batch instead of the weights; the transposes cost a fifth of what they save, and xᵀ serves the
 * kernel gradient too. The filter gradient is the correlation of the input with dy, so it is a convolution
 * over the batch axis: input [c_in, H, W, batch] with "filter" dy as [OH, OW, batch, c_out]. The input
 * gradient is the full convolution of dy with the filter rotated by 180° and its channel axes swapped.
 * Other strides use the backend's kernels.
 */
const wasmKernels: GradientKernels = {
  denseProduct(x, w) {
    if (w.shape[1] <= 2 * x.shape[0]) return { y: tf.matMul(x, w), xT: null };
    const xT = tf.transpose(x);
    return { y: tf.transpose(tf.matMul(tf.transpose(w), xT)) as tf.Tensor2D, xT };
  },
  matMulTransposeA: (a, b) => tf.matMul(tf.transpose(a), b),
  matMulTransposeB: (a, b) => tf.matMul(a, tf.transpose(b)),
  convFilter(x, dy, filterShape, strides, pad, dyBatchInside) {
    if (strides[0] !== 1 || strides[1] !== 1) return backendKernels.convFilter(x, dy, filterShape, strides, pad);
    const [padH, padW] = [samePadding(filterShape[0], pad), samePadding(filterShape[1], pad)];
    const byChannel = tf.transpose(x, [3, 1, 2, 0]) as tf.Tensor4D;
    // dy as the filter, [outH, outW, batch, c]: a ReLU pool's gradient can come in that layout already.
    const dyAsFilter = dyBatchInside ? dy : (tf.transpose(dy, [1, 2, 0, 3]) as tf.Tensor4D);
    // Padding as the convolution's own (XNNPACK reads it implicitly), not a padded copy.
    const byInput = tf.conv2d(byChannel, dyAsFilter, 1, [[0, 0], padH, padW, [0, 0]]);
    // [c_in, kh, kw, c_out] → [kh, kw, c_in, c_out]; with one input channel that is a reshape.
    return x.shape[3] === 1
      ? tf.reshape(byInput, filterShape as [number, number, number, number])
      : tf.transpose(byInput, [1, 2, 0, 3]);
  },
  convInput(dy, filter, xShape, strides, pad) {
    if (strides[0] !== 1 || strides[1] !== 1) return backendKernels.convInput(dy, filter, xShape, strides, pad);
    const [kh, kw] = filter.shape;
    const [[top, bottom], [left, right]] = [samePadding(kh, pad), samePadding(kw, pad)];
    // wasm's Reverse takes ~0.1 ms for the 3,200-value conv2 filter; ROTATED_FILTER does both steps in one pass.
    const rotated = (
      hasStepKernels('wasm')
        ? tf.engine().runKernel(ROTATED_FILTER, { filter })
        : tf.transpose(tf.reverse(filter, [0, 1]), [0, 1, 3, 2])
    ) as tf.Tensor4D;
    // The full convolution: dy padded by the kernel size minus one (minus the forward pass's own padding).
    return tf.conv2d(dy, rotated, 1, [
      [0, 0],
      [kh - 1 - top, kh - 1 - bottom],
      [kw - 1 - left, kw - 1 - right],
      [0, 0],
    ]);
  },
  takesBatchInsideDy: (strides) => strides[0] === 1 && strides[1] === 1,
};

function dense(layer: Layer, config: Config, isOutput: boolean, kernels: GradientKernels): PlannedLayer | string {
  if (inputRank(layer) !== 2) return `Dense layer "${layer.name}" takes rank-${inputRank(layer)} input`;
  const activation: Activation | null = isOutput
    ? config.activation === 'softmax'
      ? 'linear'
      : null
    : activationOf(config);
  if (!activation) return `Dense layer "${layer.name}" has activation ${JSON.stringify(config.activation)}`;
  const useBias = config.useBias !== false;
  const weights = kernelAndBias(layer, useBias);
  if (!weights) return `Dense layer "${layer.name}" has unexpected trainable weights`;
  const { kernel, bias } = weights;
  return {
    name: layer.name,
    variables: bias ? [kernel, bias] : [kernel],
    forward(x) {
      // Not tf.fused.matMul: its reshapes cost more than the add and relu it saves (2-3 ops on tfjs-node, measured).
      const { y: linear, xT } = kernels.denseProduct(x as tf.Tensor2D, kernel as tf.Tensor2D);
      const withBias = bias ? tf.add(linear, bias) : linear;
      const y = activation === 'relu' ? tf.relu(withBias) : withBias;
      return {
        y,
        backward(dy, needInputGradient, dyChannelSums) {
          const dPre = throughActivation(dy, y, activation);
          const dKernel = xT
            ? tf.matMul(xT, dPre as tf.Tensor2D)
            : kernels.matMulTransposeA(x as tf.Tensor2D, dPre as tf.Tensor2D);
          // Without an activation dPre is dy, whose column sums the loss may have computed already.
          const knownSums = activation === 'linear' ? dyChannelSums : undefined;
          return {
            dx: needInputGradient ? kernels.matMulTransposeB(dPre as tf.Tensor2D, kernel as tf.Tensor2D) : null,
            grads: bias ? [dKernel, biasGradient(dPre, knownSums)] : [dKernel],
          };
        },
      };
    },
  };
}

/**
 * `dyThroughRelu`: the next layer's backward pass already took dy through this layer's ReLU (a max
 * pool with RELU_MAX_POOL_GRAD), so this one starts at its pre-activation gradient. `dyBatchInside`:
 * that dy comes as [outH, outW, batch, c] (only for a layer whose input gradient is never asked for).
 */
function conv2d(
  layer: Layer,
  config: Config,
  kernels: GradientKernels,
  dyThroughRelu: boolean,
  dyBatchInside: boolean,
): PlannedLayer | string {
  const strides = pair(config.strides);
  const dilation = pair(config.dilationRate ?? 1);
  const padding = config.padding;
  const activation = activationOf(config);
  if (inputRank(layer) !== 4 || config.dataFormat !== 'channelsLast')
    return `Conv2D layer "${layer.name}" is not channels-last 2-D`;
  if (!strides || !dilation || dilation[0] !== 1 || dilation[1] !== 1)
    return `Conv2D layer "${layer.name}" has strides ${JSON.stringify(config.strides)}, dilation ${JSON.stringify(config.dilationRate)}`;
  if (padding !== 'valid' && padding !== 'same')
    return `Conv2D layer "${layer.name}" has padding ${JSON.stringify(padding)}`;
  if (!activation) return `Conv2D layer "${layer.name}" has activation ${JSON.stringify(config.activation)}`;
  const useBias = config.useBias !== false;
  const weights = kernelAndBias(layer, useBias);
  if (!weights) return `Conv2D layer "${layer.name}" has unexpected trainable weights`;
  const { kernel, bias } = weights;
  return {
    name: layer.name,
    variables: bias ? [kernel, bias] : [kernel],
    forward(x) {
      const x4 = x as tf.Tensor4D;
      const filter = kernel as tf.Tensor4D;
      const y = tf.fused.conv2d({ x: x4, filter, strides, pad: padding, bias: bias ?? undefined, activation });
      return {
        y,
        backward(dy, needInputGradient, dyChannelSums) {
          // Through the fused pool, or without an activation, dPre is dy, and so are its channel sums.
          const dPre = (dyThroughRelu ? dy : throughActivation(dy, y, activation)) as tf.Tensor4D;
          const knownSums = dyThroughRelu || activation === 'linear' ? dyChannelSums : undefined;
          if (dyBatchInside && needInputGradient)
            throw new Error(`layer "${layer.name}" was planned without an input gradient`);
          const dKernel = kernels.convFilter(x4, dPre, filter.shape, strides, padding, dyBatchInside);
          return {
            dx: needInputGradient ? kernels.convInput(dPre, filter, x4.shape, strides, padding) : null,
            grads: bias ? [dKernel, biasGradient(dPre, knownSums)] : [dKernel],
          };
        },
      };
    },
  };
}

/**
 * `afterRelu`: the input is a ReLU's output, and dx is wanted at that ReLU's input (RELU_MAX_POOL_GRAD);
 * `batchInside`: laid out [inH, inW, batch, c], for the convolution before (see conv2d).
 */
function maxPooling2d(layer: Layer, config: Config, afterRelu: boolean, batchInside: boolean): PlannedLayer | string {
  const poolSize = pair(config.poolSize);
  const strides = pair(config.strides ?? config.poolSize);
  const padding = config.padding;
  if (inputRank(layer) !== 4 || config.dataFormat !== 'channelsLast' || !poolSize || !strides)
    return `MaxPooling2D layer "${layer.name}" is not channels-last 2-D`;
  if (padding !== 'valid' && padding !== 'same')
    return `MaxPooling2D layer "${layer.name}" has padding ${JSON.stringify(padding)}`;
  return {
    name: layer.name,
    variables: [],
    forward(x) {
      const y = tf.maxPool(x as tf.Tensor4D, poolSize, strides, padding);
      return {
        y,
        backward(dy, needInputGradient) {
          if (!needInputGradient) return { dx: null, grads: [] };
          const attrs = { filterSize: poolSize, strides, pad: padding };
          if (afterRelu) {
            const [dx, dxChannelSums] = tf
              .engine()
              .runKernel(RELU_MAX_POOL_GRAD, { dy, input: x }, { ...attrs, batchInside }) as [tf.Tensor, tf.Tensor1D];
            return { dx, grads: [], dxChannelSums };
          }
          return {
            dx: tf.engine().runKernel('MaxPoolGrad', { dy, input: x, output: y }, attrs) as tf.Tensor,
            grads: [],
          };
        },
      };
    },
  };
}

/** Flatten and Reshape: a new shape for the same values. */
function reshape(layer: Layer, config: Config): PlannedLayer | string {
  if (layer.getClassName() === 'Flatten' && config.dataFormat !== undefined && config.dataFormat !== 'channelsLast')
    return `Flatten layer "${layer.name}" is channels-first`;
  const outShape = (layer.output as SymbolicTensor).shape.slice(1);
  if (outShape.some((d) => d === null))
    return `${layer.getClassName()} layer "${layer.name}" has an unknown output size`;
  return {
    name: layer.name,
    variables: [],
    forward(x) {
      const y = tf.reshape(x, [x.shape[0], ...(outShape as number[])]);
      return {
        y,
        backward: (dy, needInputGradient) => ({ dx: needInputGradient ? tf.reshape(dy, x.shape) : null, grads: [] }),
      };
    },
  };
}

/**
 * Plans layer-by-layer training for a Sequential model built from channels-last Conv2D (relu or linear,
 * unit dilation), MaxPooling2D, Flatten, Reshape and Dense (relu or linear) layers, ending in a Dense
 * softmax layer, every weight trainable: the built-in `mnist-cnn` and `mlp`, and layers-json models of
 * those layers. Anything else is Unplannable, with the reason.
 *
 * Why: TF.js autodiff records every op on a tape and replays generic gradient functions, and it cannot
 * fuse an activation into a matmul or convolution while recording; for models this small that
 * bookkeeping, not arithmetic, is most of a training step. The gradients here are the ones TF.js's own
 * gradient functions compute, in about a third of the ops; on wasm they are formulated for XNNPACK's
 * fast paths (see `wasmKernels`). The backend is the one active when the plan is made.
 */
export function planLayerwise(model: LayersModel): LayerwisePlan | Unplannable {
  if (model.getClassName() !== 'Sequential') return { unsupported: `a ${model.getClassName()} model, not Sequential` };
  const layers = model.layers.filter((l) => l.getClassName() !== 'InputLayer');
  const kernels = tf.getBackend() === 'wasm' ? wasmKernels : backendKernels;
  const configs = layers.map((l) => l.getConfig() as Config);
  // A ReLU convolution followed by a max pool: the pool's backward pass takes dy through the ReLU too.
  const fuseRelu = hasReluMaxPoolGrad(tf.getBackend());
  const reluBeforePool = layers.map(
    (l, i) =>
      fuseRelu &&
      l.getClassName() === 'Conv2D' &&
      configs[i].activation === 'relu' &&
      layers[i + 1]?.getClassName() === 'MaxPooling2D',
  );
  // The first layer with weights needs no input gradient: a ReLU convolution there whose filter gradient
  // takes dy with the batch inside gets it that way from the pool after it.
  const firstWeighted = layers.findIndex((l) => l.trainableWeights.length > 0);
  const batchInsideDy = layers.map(
    (_, i) =>
      i === firstWeighted && reluBeforePool[i] && kernels.takesBatchInsideDy(pair(configs[i].strides) ?? [0, 0]),
  );
  const planned: PlannedLayer[] = [];
  for (const [i, layer] of layers.entries()) {
    if (!layer.trainable) return { unsupported: `layer "${layer.name}" is frozen` };
    const config = configs[i];
    const isOutput = i === layers.length - 1;
    const kind = layer.getClassName();
    let step: PlannedLayer | string;
    if (isOutput && kind !== 'Dense') step = `the last layer is ${kind}, not Dense with softmax`;
    else if (kind === 'Dense') step = dense(layer, config, isOutput, kernels);
    else if (kind === 'Conv2D') step = conv2d(layer, config, kernels, reluBeforePool[i], batchInsideDy[i]);
    else if (kind === 'MaxPooling2D')
      step = maxPooling2d(layer, config, i > 0 && reluBeforePool[i - 1], i > 0 && batchInsideDy[i - 1]);
    else if (kind === 'Flatten' || kind === 'Reshape') step = reshape(layer, config);
    else step = `layer "${layer.name}" is a ${kind}`;
    if (typeof step === 'string') return { unsupported: step };
    planned.push(step);
  }
  const variables = planned.flatMap((l) => l.variables);
  const trainable = new Set(model.trainableWeights.map((w) => w.read()));
  if (variables.length !== trainable.size || variables.some((v) => !trainable.has(v)))
    return { unsupported: 'its trainable weights are not exactly those of its layers' };
  return { layers: planned, variables };
}
