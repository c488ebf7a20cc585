import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { type NamedTensor, sizeOfShape, type TensorManifestEntry } from '../codec/tensors';
import { TributaryError } from '../errors';

type ModelWeight = LayersModel['weights'][number];

/**
 * The stable name of a model weight: its name without TF.js's per-process uniquifying suffix
 * ('conv1/kernel', not 'conv1/kernel_3'), so two processes building one spec agree.
 */
export function weightName(weight: ModelWeight): string {
  return weight.originalName ?? weight.name;
}

function namesOf(model: LayersModel): string[] {
  const names = model.weights.map(weightName);
  const seen = new Set<string>();
  for (const n of names) {
    if (seen.has(n))
      throw new TributaryError(
        'MODEL_SHAPE_MISMATCH',
        `The model has two weights named ${JSON.stringify(n)}; give its layers unique names.`,
      );
    seen.add(n);
  }
  return names;
}

/** What the model's weights look like (names and shapes, in model order). */
export function weightManifest(model: LayersModel): TensorManifestEntry[] {
  const names = namesOf(model);
  return model.weights.map((w, i) => ({ name: names[i], shape: [...w.shape] as number[] }));
}

/** Copies every weight (trainable and not) out of the model, in model order. */
export function getNamedWeights(model: LayersModel): NamedTensor[] {
  const names = namesOf(model);
  return model.weights.map((w, i) => ({
    name: names[i],
    shape: [...w.shape] as number[],
    // A copy: on the cpu backend dataSync() returns the variable's own buffer.
    data: new Float32Array(w.read().dataSync()),
  }));
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/**
 * Checks tensors against the model's weight manifest (same names, shapes and value counts; order
 * free) and returns them in model order. Throws MODEL_SHAPE_MISMATCH naming the first mismatch.
 */
export function matchWeights(model: LayersModel, tensors: readonly NamedTensor[]): NamedTensor[] {
  const manifest = weightManifest(model);
  const byName = new Map<string, NamedTensor>();
  for (const t of tensors) {
    if (byName.has(t.name))
      throw new TributaryError('MODEL_SHAPE_MISMATCH', `Tensor ${JSON.stringify(t.name)} appears twice.`);
    byName.set(t.name, t);
  }
  const ordered: NamedTensor[] = [];
  for (const entry of manifest) {
    const t = byName.get(entry.name);
    if (!t) {
      throw new TributaryError(
        'MODEL_SHAPE_MISMATCH',
        `Missing weight ${JSON.stringify(entry.name)} (shape [${entry.shape}]): the model has ${manifest.length} weights, ${tensors.length} tensors arrived.`,
      );
    }
    if (!sameShape(t.shape, entry.shape)) {
      throw new TributaryError(
        'MODEL_SHAPE_MISMATCH',
        `Weight ${JSON.stringify(entry.name)} has shape [${entry.shape}] in the model; the tensor has [${t.shape}].`,
      );
    }
    if (t.data.length !== sizeOfShape(entry.shape)) {
      throw new TributaryError(
        'MODEL_SHAPE_MISMATCH',
        `Weight ${JSON.stringify(entry.name)} needs ${sizeOfShape(entry.shape)} values; the tensor has ${t.data.length}.`,
      );
    }
    ordered.push(t);
    byName.delete(entry.name);
  }
  if (byName.size > 0) {
    const extra = [...byName.keys()][0];
    throw new TributaryError(
      'MODEL_SHAPE_MISMATCH',
      `Unexpected tensor ${JSON.stringify(extra)}: the model has no such weight (it has ${manifest.length} weights, ${tensors.length} tensors arrived).`,
    );
  }
  return ordered;
}

/** Loads named tensors into the model's weights, after checking them all (nothing changes on a mismatch). */
export function setNamedWeights(model: LayersModel, tensors: readonly NamedTensor[]): void {
  const ordered = matchWeights(model, tensors);
  const values = ordered.map((t) => tf.tensor(t.data, t.shape, 'float32'));
  try {
    model.setWeights(values);
  } finally {
    // The variables keep their own reference to the data; these handles are temporaries.
    tf.dispose(values);
  }
}
