import * as tfl from '@tensorflow/tfjs-layers';
import { deriveSeed } from '../data/random';
import { TributaryError } from '../errors';
import { type InputSpec, LIMITS, type ModelSpec } from '../schemas/jobSpec';

/** A TF.js Layers model as built here. */
export type TfModel = tfl.LayersModel;

/** Default hidden layer widths of the built-in `mlp`. */
export const DEFAULT_MLP_HIDDEN_UNITS: readonly number[] = [128];

/**
 * The seed of one initializer: a function of the job seed, the layer name and the weight role, so
 * the same spec and seed give bit-identical initial weights in every process, and a built-in
 * rebuilt from its own toJSON() initialises exactly as the original.
 */
export function initializerSeed(seed: number, layerName: string, role: string): number {
  return deriveSeed(seed, layerName, role);
}

function glorot(seed: number, layer: string): ReturnType<typeof tfl.initializers.glorotUniform> {
  return tfl.initializers.glorotUniform({ seed: initializerSeed(seed, layer, 'kernel') });
}

/** Height, width and channels of an image-like input: [h, w, c], [h, w], or a flat square [h·w]. */
function imageShape(shape: readonly number[]): [number, number, number] {
  if (shape.length === 3) return [shape[0], shape[1], shape[2]];
  if (shape.length === 2) return [shape[0], shape[1], 1];
  if (shape.length === 1) {
    const side = Math.round(Math.sqrt(shape[0]));
    if (side * side === shape[0]) return [side, side, 1];
  }
  throw new TributaryError(
    'JOB_SPEC_INVALID',
    `mnist-cnn needs an image input of shape [height, width, channels], [height, width] or a square [n·n]; got [${shape}].`,
  );
}

/** conv 8×5×5 → maxpool 2 → conv 16×5×5 → maxpool 2 → dense softmax (~6k parameters on MNIST). */
function mnistCnn(input: InputSpec, seed: number): tfl.Sequential {
  const [h, w, c] = imageShape(input.shape);
  // Two valid 5×5 convolutions and two 2×2 pools need at least 16 pixels per side.
  if (h < 16 || w < 16) {
    throw new TributaryError(
      'JOB_SPEC_INVALID',
      `mnist-cnn needs images of at least 16×16 pixels; the input spec gives ${h}×${w}.`,
    );
  }
  const layers: tfl.layers.Layer[] = [];
  const needsReshape = input.shape.length !== 3;
  if (needsReshape)
    layers.push(tfl.layers.reshape({ name: 'reshape', targetShape: [h, w, c], inputShape: input.shape }));
  const first = needsReshape ? {} : { inputShape: [h, w, c] };
  layers.push(
    tfl.layers.conv2d({
      ...first,
      name: 'conv1',
      filters: 8,
      kernelSize: 5,
      activation: 'relu',
      kernelInitializer: glorot(seed, 'conv1'),
      biasInitializer: 'zeros',
    }),
    tfl.layers.maxPooling2d({ name: 'pool1', poolSize: 2, strides: 2 }),
    tfl.layers.conv2d({
      name: 'conv2',
      filters: 16,
      kernelSize: 5,
      activation: 'relu',
      kernelInitializer: glorot(seed, 'conv2'),
      biasInitializer: 'zeros',
    }),
    tfl.layers.maxPooling2d({ name: 'pool2', poolSize: 2, strides: 2 }),
    tfl.layers.flatten({ name: 'flatten' }),
    tfl.layers.dense({
      name: 'dense_out',
      units: input.numClasses,
      activation: 'softmax',
      kernelInitializer: glorot(seed, 'dense_out'),
      biasInitializer: 'zeros',
    }),
  );
  return tfl.sequential({ name: 'mnist_cnn', layers });
}

/** [flatten →] dense(hidden, relu)… → dense softmax. */
function mlp(input: InputSpec, hiddenUnits: readonly number[], seed: number): tfl.Sequential {
  const layers: tfl.layers.Layer[] = [];
  // Flatten accepts rank >= 2 only; a flat input goes straight into the first dense layer.
  const flat = input.shape.length === 1;
  if (!flat) layers.push(tfl.layers.flatten({ name: 'flatten', inputShape: input.shape }));
  const first = flat ? { inputShape: input.shape } : {};
  const dense = (name: string, units: number, activation: 'relu' | 'softmax') =>
    tfl.layers.dense({
      ...(layers.length === 0 ? first : {}),
      name,
      units,
      activation,
      kernelInitializer: glorot(seed, name),
      biasInitializer: 'zeros',
    });
  hiddenUnits.forEach((units, i) => layers.push(dense(`hidden${i + 1}`, units, 'relu')));
  layers.push(dense('dense_out', input.numClasses, 'softmax'));
  return tfl.sequential({ name: 'mlp', layers });
}

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Sets the seed of every seedable initializer in a Keras/TF.js topology (deep copy given), so that
 * a `layers-json` model initialises deterministically. Initializers without randomness are left alone.
 */
function seedInitializers(node: unknown, seed: number): void {
  if (Array.isArray(node)) {
    for (const item of node) seedInitializers(item, seed);
    return;
  }
  if (!isObject(node)) return;
  const config = node.config;
  if (isObject(config) && typeof config.name === 'string') {
    for (const [key, value] of Object.entries(config)) {
      if (!key.endsWith('_initializer') || !isObject(value) || !isObject(value.config)) continue;
      if ('seed' in value.config)
        value.config.seed = initializerSeed(seed, config.name, key.slice(0, -'_initializer'.length));
    }
  }
  for (const value of Object.values(node)) seedInitializers(value, seed);
}

function outputIsSoftmax(model: tfl.LayersModel): boolean {
  const last = model.layers[model.layers.length - 1];
  if (!last) return false;
  if (last.getClassName() === 'Softmax') return true;
  return (last.getConfig() as Json).activation === 'softmax';
}

function invalid(message: string, cause?: unknown): TributaryError {
  return new TributaryError('JOB_SPEC_INVALID', message, cause === undefined ? {} : { cause });
}

/** Checks that a deserialised model takes one input of the spec's shape and outputs a softmax over its classes. */
function checkLayersModel(model: tfl.LayersModel, input: InputSpec): void {
  if (model.inputs.length !== 1 || model.outputs.length !== 1) {
    throw invalid(
      `The model must have one input and one output; it has ${model.inputs.length} and ${model.outputs.length}.`,
    );
  }
  const inShape = model.inputs[0].shape;
  const expectedIn = [null, ...input.shape];
  if (inShape.length !== expectedIn.length || inShape.some((d, i) => d !== expectedIn[i])) {
    throw invalid(
      `The model's input shape is [${inShape.map(String)}]; the input spec needs [${expectedIn.map(String)}].`,
    );
  }
  const outShape = model.outputs[0].shape;
  if (outShape.length !== 2 || outShape[1] !== input.numClasses) {
    throw invalid(
      `The model's output shape is [${outShape.map(String)}]; the input spec needs [null,${input.numClasses}] (numClasses).`,
    );
  }
  if (!outputIsSoftmax(model)) {
    throw invalid(
      'The model\'s last layer must output class probabilities: use activation "softmax" (training uses cross-entropy on probabilities).',
    );
  }
  if (model.countParams() > LIMITS.maxParameters) {
    throw invalid(`The model has ${model.countParams()} parameters; at most ${LIMITS.maxParameters} are allowed.`);
  }
}

async function fromTopology(topology: Json, input: InputSpec, seed: number): Promise<tfl.LayersModel> {
  // A JSON copy (not structuredClone, whose objects come from the host realm under vm-based runners such as jest).
  const copy = JSON.parse(JSON.stringify(topology)) as Json;
  seedInitializers(copy, seed);
  let model: tfl.LayersModel;
  try {
    model = await tfl.models.modelFromJSON({ modelTopology: copy } as Parameters<typeof tfl.models.modelFromJSON>[0]);
  } catch (err) {
    throw invalid(`The model topology cannot be built: ${err instanceof Error ? err.message : String(err)}`, err);
  }
  try {
    checkLayersModel(model, input);
  } catch (err) {
    model.dispose();
    throw err;
  }
  return model;
}

/**
 * Builds the job's model with deterministic initial weights from `seed`. Built-ins: `mnist-cnn`
 * (two 5×5 convolutions, for image inputs of at least 16×16) and `mlp` (`hiddenUnits`, default
 * [128]). `layers-json` deserialises a TF.js Layers topology; it must take the input spec's shape and
 * end in a softmax over `numClasses`, else JOB_SPEC_INVALID. Layer and weight names are fixed, so
 * weight names agree across processes.
 */
export async function buildModel(spec: ModelSpec, input: InputSpec, seed: number): Promise<TfModel> {
  if (spec.kind === 'layers-json') return fromTopology(spec.topology, input, seed);
  try {
    if (spec.name === 'mnist-cnn') return mnistCnn(input, seed);
    if (spec.name === 'mlp') return mlp(input, spec.hiddenUnits ?? DEFAULT_MLP_HIDDEN_UNITS, seed);
  } catch (err) {
    if (err instanceof TributaryError) throw err;
    throw invalid(
      `The built-in model "${spec.name}" cannot be built for input shape [${input.shape}]: ${(err as Error).message}`,
      err,
    );
  }
  throw invalid(
    `Unknown built-in model ${JSON.stringify((spec as { name?: unknown }).name)}: expected "mnist-cnn" or "mlp".`,
  );
}
