import * as tf from '@tensorflow/tfjs-core';
import type { InputSpec, ModelSpec } from '../schemas/jobSpec';
import { selectBackend } from './backend';
import { buildModel } from './modelZoo';
import { getNamedWeights } from './weights';

const mnistInput: InputSpec = { shape: [28, 28, 1], labelColumn: 'label', numClasses: 10 };
const cnn: ModelSpec = { kind: 'builtin', name: 'mnist-cnn' };
const mlp: ModelSpec = { kind: 'builtin', name: 'mlp' };

beforeAll(async () => {
  await selectBackend('wasm');
});

async function weightsOf(spec: ModelSpec, input: InputSpec, seed: number) {
  const model = await buildModel(spec, input, seed);
  const weights = getNamedWeights(model);
  model.dispose();
  return weights;
}

function sameWeights(a: ReturnType<typeof getNamedWeights>, b: ReturnType<typeof getNamedWeights>): boolean {
  return a.length === b.length && a.every((t, i) => t.name === b[i].name && t.data.every((v, j) => v === b[i].data[j]));
}

describe('buildModel', () => {
  it('mnist-cnn: fixed weight names, identical across builds, deterministic per seed', async () => {
    const a = await weightsOf(cnn, mnistInput, 7);
    const b = await weightsOf(cnn, mnistInput, 7);
    expect(a.map((t) => t.name)).toEqual([
      'conv1/kernel',
      'conv1/bias',
      'conv2/kernel',
      'conv2/bias',
      'dense_out/kernel',
      'dense_out/bias',
    ]);
    expect(a.map((t) => t.shape)).toEqual([[5, 5, 1, 8], [8], [5, 5, 8, 16], [16], [256, 10], [10]]);
    expect(sameWeights(a, b)).toBe(true);
    const c = await weightsOf(cnn, mnistInput, 8);
    expect(c.map((t) => t.name)).toEqual(a.map((t) => t.name));
    expect(sameWeights(a, c)).toBe(false);
    // Layers get different initial values from one seed.
    expect(a[0].data.slice(0, 8)).not.toEqual(a[2].data.slice(0, 8));
  });

  it('mnist-cnn accepts flat square and 2-D inputs, and rejects tiny or non-image ones', async () => {
    const flat = await buildModel(cnn, { ...mnistInput, shape: [784] }, 0);
    expect(flat.outputs[0].shape).toEqual([null, 10]);
    flat.dispose();
    const twoD = await buildModel(cnn, { ...mnistInput, shape: [20, 24] }, 0);
    twoD.dispose();
    await expect(buildModel(cnn, { ...mnistInput, shape: [8, 8, 1] }, 0)).rejects.toMatchObject({
      code: 'JOB_SPEC_INVALID',
    });
    await expect(buildModel(cnn, { ...mnistInput, shape: [13] }, 0)).rejects.toMatchObject({
      code: 'JOB_SPEC_INVALID',
    });
  });

  it('mlp: default [128] hidden units, custom widths, any input rank', async () => {
    const a = await weightsOf(mlp, { shape: [13], labelColumn: 'label', numClasses: 3 }, 1);
    expect(a.map((t) => [t.name, t.shape])).toEqual([
      ['hidden1/kernel', [13, 128]],
      ['hidden1/bias', [128]],
      ['dense_out/kernel', [128, 3]],
      ['dense_out/bias', [3]],
    ]);
    const b = await weightsOf({ kind: 'builtin', name: 'mlp', hiddenUnits: [32, 16] }, mnistInput, 1);
    expect(b.map((t) => t.name)).toEqual([
      'hidden1/kernel',
      'hidden1/bias',
      'hidden2/kernel',
      'hidden2/bias',
      'dense_out/kernel',
      'dense_out/bias',
    ]);
    expect(b[0].shape).toEqual([784, 32]);
  });

  it('layers-json: a built-in round-trips through toJSON with identical names and initial weights', async () => {
    for (const spec of [cnn, mlp]) {
      const model = await buildModel(spec, mnistInput, 11);
      const topology = model.toJSON(null, false) as unknown as Record<string, unknown>;
      const original = getNamedWeights(model);
      model.dispose();
      const rebuilt = await weightsOf(
        { kind: 'layers-json', topology: JSON.parse(JSON.stringify(topology)) },
        mnistInput,
        11,
      );
      expect(sameWeights(rebuilt, original)).toBe(true);
    }
  });

  it('layers-json: topologies without seeds still initialise deterministically', async () => {
    const model = await buildModel(mlp, mnistInput, 0);
    const text = JSON.stringify(model.toJSON(null, false)).replace(/"seed":\d+/g, '"seed":null');
    model.dispose();
    const a = await weightsOf({ kind: 'layers-json', topology: JSON.parse(text) }, mnistInput, 3);
    const b = await weightsOf({ kind: 'layers-json', topology: JSON.parse(text) }, mnistInput, 3);
    expect(sameWeights(a, b)).toBe(true);
  });

  it('layers-json: bad topologies and mismatched shapes are JOB_SPEC_INVALID', async () => {
    const bad: Array<[Record<string, unknown>, RegExp]> = [
      [{ class_name: 'NoSuchModel', config: {} }, /cannot be built/],
      [{ class_name: 'Sequential', config: { layers: [{ class_name: 'Dense', config: { units: 'many' } }] } }, /./],
    ];
    for (const [topology, pattern] of bad) {
      const err = await buildModel({ kind: 'layers-json', topology }, mnistInput, 0).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'JOB_SPEC_INVALID' });
      expect((err as Error).message).toMatch(pattern);
    }
    const model = await buildModel(mlp, mnistInput, 0);
    const topology = model.toJSON(null, false) as unknown as Record<string, unknown>;
    model.dispose();
    const inputErr = await buildModel({ kind: 'layers-json', topology }, { ...mnistInput, shape: [10] }, 0).catch(
      (e: unknown) => e,
    );
    expect(inputErr).toMatchObject({ code: 'JOB_SPEC_INVALID' });
    expect((inputErr as Error).message).toBe(
      "The model's input shape is [null,28,28,1]; the input spec needs [null,10].",
    );
    const classErr = await buildModel({ kind: 'layers-json', topology }, { ...mnistInput, numClasses: 5 }, 0).catch(
      (e: unknown) => e,
    );
    expect((classErr as Error).message).toMatch(/output shape is \[null,10\]; the input spec needs \[null,5\]/);
    const linear = JSON.parse(JSON.stringify(topology).replace('"activation":"softmax"', '"activation":"linear"'));
    await expect(buildModel({ kind: 'layers-json', topology: linear }, mnistInput, 0)).rejects.toMatchObject({
      code: 'JOB_SPEC_INVALID',
    });
  });

  it('leaks no tensors when building and disposing', async () => {
    const before = tf.memory().numTensors;
    (await buildModel(cnn, mnistInput, 0)).dispose();
    await buildModel({ kind: 'layers-json', topology: { class_name: 'Nope', config: {} } }, mnistInput, 0).catch(
      () => undefined,
    );
    expect(tf.memory().numTensors).toBe(before);
  });
});
