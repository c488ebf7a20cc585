import * as tf from '@tensorflow/tfjs-core';
import type { Dataset } from '../data/dataset';
import { createRng } from '../data/random';
import type { InputSpec, ModelSpec, TrainConfig } from '../schemas/jobSpec';
import { selectBackend } from './backend';
import { evaluateModel } from './evaluate';
import { buildModel } from './modelZoo';
import { trainLocal } from './train';
import { getNamedWeights } from './weights';

const input: InputSpec = { shape: [2], labelColumn: 'label', numClasses: 2 };
const config: TrainConfig = { localEpochs: 1, batchSize: 16, learningRate: 0.5, proximalMu: 0, seed: 1 };

/** Two separable blobs: class 0 around (-1, -1), class 1 around (1, 1). */
function blobs(count: number, seed: number): Dataset {
  const rng = createRng(seed);
  const x = new Float32Array(count * 2);
  const y = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    y[i] = i % 2;
    const centre = y[i] === 0 ? -1 : 1;
    x[2 * i] = centre + (rng() - 0.5) * 0.8;
    x[2 * i + 1] = centre + (rng() - 0.5) * 0.8;
  }
  return { x, y, count, exampleShape: [2] };
}

const mlp: ModelSpec = { kind: 'builtin', name: 'mlp', hiddenUnits: [8] };

beforeAll(async () => {
  await selectBackend('wasm');
});

describe('trainLocal', () => {
  it('reduces the loss on a separable dataset and reaches high accuracy', async () => {
    const data = blobs(256, 1);
    const model = await buildModel(mlp, input, 0);
    const before = await evaluateModel(model, data);
    const first = await trainLocal(model, data, config);
    const second = await trainLocal(model, data, { ...config, localEpochs: 3 });
    const after = await evaluateModel(model, data);
    expect(first.numExamples).toBe(256);
    expect(second.loss).toBeLessThan(first.loss);
    expect(after.loss).toBeLessThan(before.loss / 4);
    expect(after.accuracy).toBeGreaterThan(0.97);
    expect(second.samplesPerSecond).toBeGreaterThan(0);
    model.dispose();
  });

  it('is reproducible for a seed', async () => {
    const data = blobs(100, 2);
    const run = async (seed: number) => {
      const model = await buildModel(mlp, input, 5);
      await trainLocal(model, data, { ...config, batchSize: 7, seed });
      const w = getNamedWeights(model);
      model.dispose();
      return w;
    };
    const a = await run(3);
    expect(await run(3)).toEqual(a);
    expect(await run(4)).not.toEqual(a);
  });

  it('leaks no tensors (plain and FedProx, training and evaluation)', async () => {
    const data = blobs(50, 3);
    const model = await buildModel(
      { kind: 'builtin', name: 'mnist-cnn' },
      { shape: [16, 16, 1], labelColumn: 'label', numClasses: 2 },
      0,
    );
    const images: Dataset = {
      x: new Float32Array(50 * 256).map((_, i) => (i % 7) / 7),
      y: data.y,
      count: 50,
      exampleShape: [16, 16, 1],
    };
    const global = getNamedWeights(model);
    const before = tf.memory().numTensors;
    await trainLocal(model, images, { ...config, batchSize: 8, localEpochs: 2 });
    await trainLocal(model, images, { ...config, batchSize: 8, proximalMu: 0.1 }, global);
    await evaluateModel(model, images, 16);
    expect(tf.memory().numTensors).toBe(before);
    model.dispose();
  });

  it('FedProx with a huge mu keeps the weights near the global ones', async () => {
    const data = blobs(128, 4);
    const distanceAfter = async (mu: number) => {
      const model = await buildModel(mlp, input, 9);
      const global = getNamedWeights(model);
      await trainLocal(model, data, { ...config, learningRate: 0.01, localEpochs: 4, proximalMu: mu }, global);
      const local = getNamedWeights(model);
      model.dispose();
      let sq = 0;
      local.forEach((t, i) => t.data.forEach((v, j) => (sq += (v - global[i].data[j]) ** 2)));
      return Math.sqrt(sq);
    };
    const free = await distanceAfter(0);
    const anchored = await distanceAfter(100);
    // At the proximal fixed point ‖w − w_global‖ = ‖∇loss‖ / mu, small for mu = 100.
    expect(free).toBeGreaterThan(0.1);
    expect(anchored).toBeLessThan(free / 10);
  });

  it('checks its inputs before training', async () => {
    const model = await buildModel(mlp, input, 0);
    const empty: Dataset = { x: new Float32Array(0), y: new Int32Array(0), count: 0, exampleShape: [2] };
    await expect(trainLocal(model, empty, config)).rejects.toMatchObject({ code: 'DATA_FILE_EMPTY' });
    const wrongShape: Dataset = { x: new Float32Array(3), y: new Int32Array(1), count: 1, exampleShape: [3] };
    await expect(trainLocal(model, wrongShape, config)).rejects.toMatchObject({ code: 'DATA_COLUMNS_MISMATCH' });
    const badLabel: Dataset = { x: new Float32Array(2), y: new Int32Array([2]), count: 1, exampleShape: [2] };
    await expect(trainLocal(model, badLabel, config)).rejects.toMatchObject({ code: 'DATA_LABEL_OUT_OF_RANGE' });
    await expect(trainLocal(model, blobs(4, 1), { ...config, proximalMu: 1 })).rejects.toMatchObject({
      code: 'JOB_SPEC_INVALID',
    });
    const partial = getNamedWeights(model).slice(1);
    await expect(trainLocal(model, blobs(4, 1), { ...config, proximalMu: 1 }, partial)).rejects.toMatchObject({
      code: 'MODEL_SHAPE_MISMATCH',
    });
    model.dispose();
  });
});

describe('evaluateModel', () => {
  it('reports mean loss, accuracy and count, independent of batch size', async () => {
    const data = blobs(37, 5);
    const model = await buildModel(mlp, input, 0);
    const a = await evaluateModel(model, data, 5);
    const b = await evaluateModel(model, data, 1000);
    expect(a.numExamples).toBe(37);
    expect(a.loss).toBeCloseTo(b.loss, 5);
    expect(a.accuracy).toBeCloseTo(b.accuracy, 10);
    expect(a.loss).toBeGreaterThan(0);
    model.dispose();
  });
});
