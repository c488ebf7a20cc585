import { TributaryError } from '../errors';
import type { InputSpec, ModelSpec } from '../schemas/jobSpec';
import { topologyBoundsProblem } from '../schemas/topologyBounds';

/*
 * A model's parameter count computed from its spec alone, so an oversized model is refused before any
 * weight exists (building a 250M-parameter model first costs gigabytes). Built-ins by formula;
 * `layers-json` by walking the topology in layer order, inferring each layer's output shape, for the
 * layer classes listed in COUNTED_LAYERS (channels-last). A topology with another class is refused:
 * its size cannot be known without building it. The count includes non-trainable weights (batch-norm
 * moving statistics), as TF.js `countParams()` and the codec do. Tests compare it with TF.js.
 */

/** Default hidden layer widths of the built-in `mlp` (modelZoo.ts DEFAULT_MLP_HIDDEN_UNITS). */
const MLP_DEFAULT_HIDDEN = [128];

type Shape = Array<number | null>;
type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

function invalid(message: string): TributaryError {
  return new TributaryError('JOB_SPEC_INVALID', `Invalid job spec: model: ${message}`);
}

/** Parameter count of the model `spec` builds for `input`; throws JOB_SPEC_INVALID when it cannot be computed. */
export function parameterCount(spec: ModelSpec, input: InputSpec): number {
  if (spec.kind === 'builtin') {
    if (spec.name === 'mlp') return mlpParameters(input, spec.hiddenUnits ?? MLP_DEFAULT_HIDDEN);
    return mnistCnnParameters(input);
  }
  const problem = topologyBoundsProblem(spec.topology);
  if (problem) throw invalid(`the topology is ${problem}.`);
  return topologyParameters(spec.topology);
}

function mlpParameters(input: InputSpec, hidden: readonly number[]): number {
  let width = input.shape.reduce((a, b) => a * b, 1);
  let total = 0;
  for (const units of [...hidden, input.numClasses]) {
    total += width * units + units;
    width = units;
  }
  return total;
}

function mnistCnnParameters(input: InputSpec): number {
  const s = input.shape;
  const side = s.length === 1 ? Math.round(Math.sqrt(s[0])) : 0;
  const [h, w, c] =
    s.length === 3 ? s : s.length === 2 ? [s[0], s[1], 1] : side * side === s[0] ? [side, side, 1] : [0, 0, 0];
  if (h < 16 || w < 16) throw invalid(`mnist-cnn needs an image input of at least 16×16 pixels; got [${s}].`);
  // conv 8×5×5 → pool 2 → conv 16×5×5 → pool 2 → dense (modelZoo.ts mnistCnn).
  const after = (n: number) => Math.floor((Math.floor((n - 4) / 2) - 4) / 2);
  return 5 * 5 * c * 8 + 8 + 5 * 5 * 8 * 16 + 16 + after(h) * after(w) * 16 * input.numClasses + input.numClasses;
}

function topologyParameters(topology: Json): number {
  const className = topology.class_name;
  const config = topology.config;
  const layers = isObject(config) ? config.layers : Array.isArray(config) ? config : undefined;
  if (!Array.isArray(layers) || layers.length === 0) {
    throw invalid('a layers-json topology must be a Sequential or Model with a non-empty config.layers list.');
  }
  if (layers.length > 10_000) throw invalid(`at most 10000 layers are counted; the topology has ${layers.length}.`);
  if (className === 'Sequential') return sequentialParameters(layers);
  if (className === 'Model' || className === 'Functional') return functionalParameters(layers);
  throw invalid(`cannot count the parameters of a topology of class ${JSON.stringify(className)}.`);
}

function layerOf(raw: unknown, index: number): { className: string; config: Json; raw: Json } {
  if (!isObject(raw) || typeof raw.class_name !== 'string' || !isObject(raw.config)) {
    throw invalid(`layer ${index} is not {class_name, config}.`);
  }
  return { className: raw.class_name, config: raw.config, raw };
}

function sequentialParameters(layers: unknown[]): number {
  let shape: Shape | null = null;
  let total = 0;
  layers.forEach((raw, i) => {
    const layer = layerOf(raw, i);
    const declared = declaredInputShape(layer.config);
    if (layer.className === 'InputLayer') {
      if (!declared) throw invalid(`layer ${i} (InputLayer) declares no batch_input_shape.`);
      shape = declared;
      return;
    }
    if (shape === null) {
      if (!declared) throw invalid(`the first layer (${layer.className}) declares no batch_input_shape.`);
      shape = declared;
    }
    const out = countLayer(layer.className, layer.config, [shape], i);
    total += out.parameters;
    shape = out.shape;
  });
  return total;
}

function functionalParameters(layers: unknown[]): number {
  const shapes = new Map<string, Shape>();
  let total = 0;
  layers.forEach((raw, i) => {
    const layer = layerOf(raw, i);
    const name = typeof layer.raw.name === 'string' ? layer.raw.name : layer.config.name;
    if (typeof name !== 'string') throw invalid(`layer ${i} has no name.`);
    if (layer.className === 'InputLayer') {
      const declared = declaredInputShape(layer.config);
      if (!declared) throw invalid(`layer ${name} (InputLayer) declares no batch_input_shape.`);
      shapes.set(name, declared);
      return;
    }
    const nodes = layer.raw.inbound_nodes;
    if (!Array.isArray(nodes) || nodes.length !== 1 || !Array.isArray(nodes[0])) {
      throw invalid(`layer ${name} must be called exactly once (shared layers are not counted).`);
    }
    const inputs = (nodes[0] as unknown[]).map((ref) => {
      const source = Array.isArray(ref) ? ref[0] : undefined;
      const shape = typeof source === 'string' ? shapes.get(source) : undefined;
      if (!shape) throw invalid(`layer ${name} takes an input from an unknown or later layer.`);
      return shape;
    });
    const out = countLayer(layer.className, layer.config, inputs, i);
    total += out.parameters;
    shapes.set(name, out.shape);
  });
  return total;
}

function declaredInputShape(config: Json): Shape | null {
  const batch = config.batch_input_shape ?? config.batch_shape;
  if (Array.isArray(batch)) return dims(batch.slice(1), 'batch_input_shape');
  if (Array.isArray(config.input_shape)) return dims(config.input_shape, 'input_shape');
  return null;
}

function dims(value: unknown[], what: string): Shape {
  if (value.length > 8) throw invalid(`${what} has more than 8 dimensions.`);
  return value.map((d) => {
    if (d === null) return null;
    if (!Number.isInteger(d) || (d as number) < 1 || (d as number) > 1e9) throw invalid(`${what} has a bad dimension.`);
    return d as number;
  });
}

/** Layer classes whose parameters and output shape are computed here. */
export const COUNTED_LAYERS = [
  'Dense',
  'Conv1D',
  'Conv2D',
  'DepthwiseConv2D',
  'SeparableConv2D',
  'MaxPooling1D',
  'MaxPooling2D',
  'AveragePooling1D',
  'AveragePooling2D',
  'GlobalMaxPooling1D',
  'GlobalMaxPooling2D',
  'GlobalAveragePooling1D',
  'GlobalAveragePooling2D',
  'Flatten',
  'Reshape',
  'BatchNormalization',
  'LayerNormalization',
  'Embedding',
  'SimpleRNN',
  'GRU',
  'LSTM',
  'Add',
  'Multiply',
  'Average',
  'Maximum',
  'Minimum',
  'Concatenate',
  'Dropout',
  'SpatialDropout1D',
  'SpatialDropout2D',
  'GaussianNoise',
  'GaussianDropout',
  'AlphaDropout',
  'Activation',
  'ReLU',
  'LeakyReLU',
  'ELU',
  'Softmax',
  'ThresholdedReLU',
] as const;

const SHAPE_PRESERVING = new Set([
  'Dropout',
  'SpatialDropout1D',
  'SpatialDropout2D',
  'GaussianNoise',
  'GaussianDropout',
  'AlphaDropout',
  'Activation',
  'ReLU',
  'LeakyReLU',
  'ELU',
  'Softmax',
  'ThresholdedReLU',
]);

function known(n: number | null | undefined, what: string): number {
  if (typeof n !== 'number') throw invalid(`${what} must be known (not null) to count parameters.`);
  return n;
}

function intList(value: unknown, rank: number, what: string, fallback?: number[]): number[] {
  if (value === undefined || value === null) {
    if (fallback) return fallback;
    throw invalid(`${what} is missing.`);
  }
  const list = typeof value === 'number' ? Array(rank).fill(value) : value;
  if (!Array.isArray(list) || list.length !== rank || !list.every((v) => Number.isInteger(v) && v >= 1 && v <= 1e6)) {
    throw invalid(`${what} must be ${rank} positive integer(s).`);
  }
  return list as number[];
}

function positive(value: unknown, what: string): number {
  if (!Number.isInteger(value) || (value as number) < 1 || (value as number) > 1e9) {
    throw invalid(`${what} must be a positive integer.`);
  }
  return value as number;
}

/** Output length of a convolution or pooling window along one axis (Keras conv_output_length). */
function windowed(length: number | null, size: number, stride: number, padding: unknown, dilation = 1): number | null {
  if (length === null) return null;
  const span = (size - 1) * dilation + 1;
  if (padding === 'same') return Math.ceil(length / stride);
  if (padding === undefined || padding === 'valid') return Math.max(0, Math.floor((length - span) / stride) + 1);
  throw invalid(`padding ${JSON.stringify(padding)} is not counted (use "valid" or "same").`);
}

function countLayer(
  className: string,
  config: Json,
  inputs: Shape[],
  index: number,
): { parameters: number; shape: Shape } {
  if (config.data_format !== undefined && config.data_format !== 'channels_last') {
    throw invalid(`layer ${index} (${className}): only data_format "channels_last" is counted.`);
  }
  const merge = ['Add', 'Multiply', 'Average', 'Maximum', 'Minimum', 'Concatenate'];
  if (!merge.includes(className) && inputs.length !== 1)
    throw invalid(`layer ${index} (${className}) takes one input.`);
  const input = inputs[0];
  const last = () => known(input[input.length - 1], `the last input dimension of layer ${index} (${className})`);
  const bias = config.use_bias !== false;
  if (SHAPE_PRESERVING.has(className)) return { parameters: 0, shape: input };
  switch (className) {
    case 'Dense': {
      const units = positive(config.units, `layer ${index} units`);
      return { parameters: last() * units + (bias ? units : 0), shape: [...input.slice(0, -1), units] };
    }
    case 'Conv1D':
    case 'Conv2D':
    case 'DepthwiseConv2D':
    case 'SeparableConv2D': {
      const rank = className === 'Conv1D' ? 1 : 2;
      if (input.length !== rank + 1) throw invalid(`layer ${index} (${className}) needs a rank-${rank + 1} input.`);
      const kernel = intList(config.kernel_size, rank, `layer ${index} kernel_size`);
      const strides = intList(config.strides, rank, `layer ${index} strides`, Array(rank).fill(1));
      const dilation = intList(config.dilation_rate, rank, `layer ${index} dilation_rate`, Array(rank).fill(1));
      const channels = last();
      const window = kernel.reduce((a, b) => a * b, 1);
      const spatial = input
        .slice(0, rank)
        .map((n, i) => windowed(n, kernel[i], strides[i], config.padding, dilation[i]));
      if (className === 'DepthwiseConv2D') {
        const multiplier = positive(config.depth_multiplier ?? 1, `layer ${index} depth_multiplier`);
        const out = channels * multiplier;
        return { parameters: window * out + (bias ? out : 0), shape: [...spatial, out] };
      }
      const filters = positive(config.filters, `layer ${index} filters`);
      if (className === 'SeparableConv2D') {
        const multiplier = positive(config.depth_multiplier ?? 1, `layer ${index} depth_multiplier`);
        const parameters = window * channels * multiplier + channels * multiplier * filters + (bias ? filters : 0);
        return { parameters, shape: [...spatial, filters] };
      }
      return { parameters: window * channels * filters + (bias ? filters : 0), shape: [...spatial, filters] };
    }
    case 'MaxPooling1D':
    case 'AveragePooling1D':
    case 'MaxPooling2D':
    case 'AveragePooling2D': {
      const rank = className.endsWith('1D') ? 1 : 2;
      if (input.length !== rank + 1) throw invalid(`layer ${index} (${className}) needs a rank-${rank + 1} input.`);
      const pool = intList(config.pool_size, rank, `layer ${index} pool_size`, Array(rank).fill(2));
      const strides = intList(config.strides, rank, `layer ${index} strides`, pool);
      const spatial = input.slice(0, rank).map((n, i) => windowed(n, pool[i], strides[i], config.padding));
      return { parameters: 0, shape: [...spatial, input[rank]] };
    }
    case 'GlobalMaxPooling1D':
    case 'GlobalMaxPooling2D':
    case 'GlobalAveragePooling1D':
    case 'GlobalAveragePooling2D':
      return { parameters: 0, shape: [input[input.length - 1]] };
    case 'Flatten':
      return { parameters: 0, shape: [input.reduce<number>((a, n) => a * known(n, `a dimension before Flatten`), 1)] };
    case 'Reshape': {
      const target = config.target_shape;
      if (!Array.isArray(target) || target.length === 0 || target.length > 8) {
        throw invalid(`layer ${index} (Reshape) needs a target_shape.`);
      }
      const size = input.reduce<number>((a, n) => a * known(n, 'a dimension before Reshape'), 1);
      const fixed = target.filter((d) => d !== -1 && d !== null) as number[];
      const product = fixed.reduce((a, b) => a * positive(b, `layer ${index} target_shape`), 1);
      const shape = target.map((d) => (d === -1 || d === null ? size / product : d)) as number[];
      if (shape.reduce((a, b) => a * b, 1) !== size)
        throw invalid(`layer ${index} (Reshape) does not preserve the size.`);
      return { parameters: 0, shape };
    }
    case 'BatchNormalization':
    case 'LayerNormalization': {
      // The last axis, as -1 or as its index in the batch shape (TF.js writes [rank]), alone or in a list.
      const raw = config.axis ?? -1;
      const axis = Array.isArray(raw) && raw.length === 1 ? raw[0] : raw;
      if (axis !== -1 && axis !== input.length) {
        throw invalid(`layer ${index} (${className}): only the last axis is counted.`);
      }
      const perChannel =
        (config.center === false ? 0 : 1) +
        (config.scale === false ? 0 : 1) +
        (className === 'BatchNormalization' ? 2 : 0);
      return { parameters: last() * perChannel, shape: input };
    }
    case 'Embedding': {
      const inputDim = positive(config.input_dim, `layer ${index} input_dim`);
      const outputDim = positive(config.output_dim, `layer ${index} output_dim`);
      return { parameters: inputDim * outputDim, shape: [...input, outputDim] };
    }
    case 'SimpleRNN':
    case 'GRU':
    case 'LSTM': {
      if (input.length !== 2) throw invalid(`layer ${index} (${className}) needs a [timesteps, features] input.`);
      const units = positive(config.units, `layer ${index} units`);
      const gates = className === 'LSTM' ? 4 : className === 'GRU' ? 3 : 1;
      const parameters = gates * (last() * units + units * units + (bias ? units : 0));
      return { parameters, shape: config.return_sequences === true ? [input[0], units] : [units] };
    }
    case 'Concatenate': {
      const axis = config.axis ?? -1;
      if (axis !== -1 && axis !== input.length)
        throw invalid(`layer ${index} (Concatenate): only the last axis is counted.`);
      const width = inputs.reduce((a, s) => a + known(s[s.length - 1], 'a concatenated dimension'), 0);
      return { parameters: 0, shape: [...input.slice(0, -1), width] };
    }
    case 'Add':
    case 'Multiply':
    case 'Average':
    case 'Maximum':
    case 'Minimum':
      return { parameters: 0, shape: input };
    default:
      throw invalid(
        `cannot count the parameters of layer ${index} of class ${JSON.stringify(className).slice(0, 80)} before building it; counted classes: ${COUNTED_LAYERS.join(', ')}.`,
      );
  }
}
