import * as tf from '@tensorflow/tfjs-core';
import type { NamedTensor } from '../codec/tensors';
import type { InputSpec } from '../schemas/jobSpec';
import { selectBackend } from './backend';
import { buildModel } from './modelZoo';
import { getNamedWeights, setNamedWeights, weightManifest } from './weights';

const input: InputSpec = { shape: [4], labelColumn: 'label', numClasses: 3 };

beforeAll(async () => {
  await selectBackend('cpu');
});

function shifted(weights: NamedTensor[], by: number): NamedTensor[] {
  return weights.map((t) => ({ ...t, data: t.data.map((v) => v + by) }));
}

function errorOf(fn: () => unknown): { code?: string; message: string } {
  try {
    fn();
  } catch (err) {
    return { code: (err as { code?: string }).code, message: (err as Error).message };
  }
  throw new Error('expected an error');
}

describe('named weights', () => {
  it('round-trips set/get, in any tensor order, and copies data out', async () => {
    const model = await buildModel({ kind: 'builtin', name: 'mlp', hiddenUnits: [5] }, input, 0);
    const original = getNamedWeights(model);
    const target = shifted(original, 0.25);
    setNamedWeights(model, [...target].reverse());
    const got = getNamedWeights(model);
    expect(got.map((t) => t.name)).toEqual(original.map((t) => t.name));
    for (let i = 0; i < got.length; i++) {
      expect(got[i].shape).toEqual(target[i].shape);
      for (let j = 0; j < got[i].data.length; j++) expect(got[i].data[j]).toBeCloseTo(target[i].data[j], 6);
    }
    got[0].data[0] = 1234;
    expect(getNamedWeights(model)[0].data[0]).not.toBe(1234);
    expect(weightManifest(model)).toEqual(original.map((t) => ({ name: t.name, shape: t.shape })));
    model.dispose();
  });

  it('rejects mismatches with MODEL_SHAPE_MISMATCH naming the first one, changing nothing', async () => {
    const model = await buildModel({ kind: 'builtin', name: 'mlp', hiddenUnits: [5] }, input, 0);
    const w = getNamedWeights(model);
    expect(errorOf(() => setNamedWeights(model, w.slice(1)))).toEqual({
      code: 'MODEL_SHAPE_MISMATCH',
      message: 'Missing weight "hidden1/kernel" (shape [4,5]): the model has 4 weights, 3 tensors arrived.',
    });
    expect(
      errorOf(() => setNamedWeights(model, [...w, { name: 'extra/bias', shape: [1], data: new Float32Array(1) }])),
    ).toEqual({
      code: 'MODEL_SHAPE_MISMATCH',
      message: 'Unexpected tensor "extra/bias": the model has no such weight (it has 4 weights, 5 tensors arrived).',
    });
    const wrongShape = w.map((t, i) => (i === 1 ? { ...t, shape: [1, 5] } : t));
    expect(errorOf(() => setNamedWeights(model, wrongShape))).toEqual({
      code: 'MODEL_SHAPE_MISMATCH',
      message: 'Weight "hidden1/bias" has shape [5] in the model; the tensor has [1,5].',
    });
    const shortData = w.map((t, i) => (i === 2 ? { ...t, data: t.data.subarray(1) } : t));
    expect(errorOf(() => setNamedWeights(model, shortData)).message).toBe(
      'Weight "dense_out/kernel" needs 15 values; the tensor has 14.',
    );
    expect(errorOf(() => setNamedWeights(model, [...w, w[0]])).message).toBe('Tensor "hidden1/kernel" appears twice.');
    expect(getNamedWeights(model)).toEqual(w);
    model.dispose();
  });

  it('leaks no tensors', async () => {
    const model = await buildModel(
      { kind: 'builtin', name: 'mnist-cnn' },
      { shape: [28, 28, 1], labelColumn: 'label', numClasses: 10 },
      0,
    );
    const w = getNamedWeights(model);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) setNamedWeights(model, shifted(w, i));
    getNamedWeights(model);
    expect(tf.memory().numTensors).toBe(before);
    model.dispose();
  });
});
