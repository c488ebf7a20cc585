import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { testBackend } from '../../test/support/testBackend';
import type { Dataset } from '../data/dataset';
import { loadMnist } from '../data/mnist';
import { createRng } from '../data/random';
import type { InputSpec, ModelSpec, TrainConfig } from '../schemas/jobSpec';
import { selectBackend } from './backend';
import { evaluateModel } from './evaluate';
import { buildModel } from './modelZoo';
import { type TrainOptions, trainLocal } from './train';
import { trainLocalReference } from './trainReference';
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
  await selectBackend(testBackend());
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

  it('leaks no tensors (plain, FedProx, several upload runs, autodiff; training and evaluation)', async () => {
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
    await trainLocal(model, images, { ...config, batchSize: 8, proximalMu: 0.1 }, global, { maxRunBytes: 20_000 });
    await evaluateModel(model, images, 16);
    // The autodiff path (a tanh layer) too.
    const tanh = tfl.sequential({
      layers: [
        tfl.layers.dense({ inputShape: [2], units: 4, activation: 'tanh' }),
        tfl.layers.dense({ units: 2, activation: 'softmax' }),
      ],
    });
    const afterModels = tf.memory().numTensors;
    const result = await trainLocal(tanh, data, { ...config, batchSize: 8, proximalMu: 0.1 }, getNamedWeights(tanh));
    expect(result.gradients).toBe('autodiff');
    expect(tf.memory().numTensors).toBe(afterModels);
    tanh.dispose();
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

describe('trainLocal against the reference loop (trainLocalReference, the loop before the fused step)', () => {
  /** Trains two copies of one model, one with each loop, and returns both results and the largest weight difference. */
  async function both(
    make: () => Promise<tfl.LayersModel>,
    data: Dataset,
    cfg: TrainConfig,
    withGlobal = false,
    options: TrainOptions = {},
  ) {
    const fused = await make();
    const reference = await make();
    reference.setWeights(fused.getWeights());
    const global = withGlobal
      ? getNamedWeights(fused).map((t) => ({ ...t, data: t.data.map((v) => v * 0.9) }))
      : undefined;
    const a = await trainLocal(fused, data, cfg, global, options);
    const b = await trainLocalReference(reference, data, cfg, global);
    const wa = getNamedWeights(fused);
    const wb = getNamedWeights(reference);
    const initial = await make();
    const w0 = getNamedWeights(initial);
    let diff = 0;
    let moved = 0;
    wa.forEach((t, i) =>
      t.data.forEach((v, j) => {
        diff = Math.max(diff, Math.abs(v - wb[i].data[j]));
        moved = Math.max(moved, Math.abs(v - w0[i].data[j]));
      }),
    );
    for (const m of [fused, reference, initial]) m.dispose();
    return { a, b, diff, moved };
  }

  const mnist = loadMnist({ count: 150 });
  const mnistInput: InputSpec = { shape: [28, 28, 1], labelColumn: 'label', numClasses: 10 };
  const cfg: TrainConfig = { localEpochs: 2, batchSize: 16, learningRate: 0.1, proximalMu: 0, seed: 11 };

  it.each([
    ['mnist-cnn', 0],
    ['mnist-cnn', 0.3],
    ['mlp', 0],
    ['mlp', 0.3],
  ] as const)(
    '%s with mu = %s: same loss, accuracy and weights on a fixed seed (150 digits: a partial last batch)',
    async (name, mu) => {
      const make = () => buildModel({ kind: 'builtin', name }, mnistInput, 4);
      const { a, b, diff, moved } = await both(make, mnist, { ...cfg, proximalMu: mu }, mu > 0);
      expect(a.gradients).toBe('layerwise');
      expect(a.loss).toBeCloseTo(b.loss, 5);
      expect(a.accuracy).toBeCloseTo(b.accuracy, 10);
      expect(moved).toBeGreaterThan(0.01);
      expect(diff).toBeLessThan(1e-4);
    },
  );

  it('a model the layerwise path does not cover (tanh) trains through autodiff, with the same results', async () => {
    const make = async () =>
      tfl.sequential({
        layers: [
          tfl.layers.dense({
            name: 'tanh6',
            inputShape: [2],
            units: 6,
            activation: 'tanh',
            kernelInitializer: tfl.initializers.glorotUniform({ seed: 1 }),
          }),
          tfl.layers.dense({
            name: 'out',
            units: 2,
            activation: 'softmax',
            kernelInitializer: tfl.initializers.glorotUniform({ seed: 2 }),
          }),
        ],
      });
    const { a, b, diff, moved } = await both(make, blobs(90, 6), { ...cfg, learningRate: 0.3, proximalMu: 0.2 }, true);
    expect(a.gradients).toBe('autodiff');
    expect(a.loss).toBeCloseTo(b.loss, 5);
    expect(a.accuracy).toBeCloseTo(b.accuracy, 10);
    expect(moved).toBeGreaterThan(0.01);
    expect(diff).toBeLessThan(1e-5);
  });

  it('an epoch laid out in several runs (4 runs of up to 3 batches) trains as in one run', async () => {
    const make = () => buildModel({ kind: 'builtin', name: 'mnist-cnn' }, mnistInput, 5);
    const bytesPerExample = 4 * (28 * 28 + 10 + 1);
    const runs = await both(make, mnist, cfg, false, { maxRunBytes: 3 * 16 * bytesPerExample });
    const single = await both(make, mnist, cfg);
    expect(runs.a.loss).toBeCloseTo(runs.b.loss, 5);
    expect(runs.a.loss).toBeCloseTo(single.a.loss, 5);
    expect(runs.a.accuracy).toBe(single.a.accuracy);
    expect(runs.moved).toBeGreaterThan(0.01);
    expect(runs.diff).toBeLessThan(1e-4);
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
