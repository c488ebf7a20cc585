import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { testBackend } from '../../test/support/testBackend';
import { selectBackend } from './backend';
import { planLayerwise } from './layerwiseGradients';
import { buildModel } from './modelZoo';
import { createTrainStep } from './trainStep';
import { uniformTensor as uniform } from '../../test/support/uniformTensor';

const BACKENDS = testBackend() === 'wasm' ? (['wasm', 'cpu'] as const) : ([testBackend()] as const);

type ModelFactory = () => Promise<tfl.LayersModel>;

/**
 * A Sequential model exercising every branch of the layerwise plan: 'same' padding (an even kernel side,
 * so uneven padding), strides, overlapping pools, no bias, linear activations.
 */
function mixedConvNet(): tfl.LayersModel {
  return tfl.sequential({
    layers: [
      tfl.layers.conv2d({ inputShape: [9, 9, 2], filters: 3, kernelSize: 3, padding: 'same', useBias: false }),
      tfl.layers.maxPooling2d({ poolSize: 3, strides: 2, padding: 'same' }),
      tfl.layers.conv2d({ filters: 4, kernelSize: [2, 3], padding: 'same', activation: 'relu' }),
      tfl.layers.conv2d({ filters: 4, kernelSize: [2, 3], strides: 2, activation: 'relu' }),
      tfl.layers.flatten(),
      tfl.layers.dense({ units: 6, useBias: false }),
      tfl.layers.dense({ units: 5, activation: 'softmax' }),
    ],
  });
}

const MODELS: Array<[string, number[], number, ModelFactory]> = [
  [
    'mlp [16, 8] on 6×6×1',
    [6, 6, 1],
    4,
    () =>
      buildModel(
        { kind: 'builtin', name: 'mlp', hiddenUnits: [16, 8] },
        { shape: [6, 6, 1], labelColumn: 'l', numClasses: 4 },
        1,
      ),
  ],
  [
    'mnist-cnn on 16×16×1',
    [16, 16, 1],
    3,
    () =>
      buildModel({ kind: 'builtin', name: 'mnist-cnn' }, { shape: [16, 16, 1], labelColumn: 'l', numClasses: 3 }, 2),
  ],
  [
    'mnist-cnn on flat 256 (Reshape first)',
    [256],
    3,
    () => buildModel({ kind: 'builtin', name: 'mnist-cnn' }, { shape: [256], labelColumn: 'l', numClasses: 3 }, 3),
  ],
  ['conv (same, strided, no bias) + overlapping pool + dense', [9, 9, 2], 5, async () => mixedConvNet()],
];

function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
}

describe.each(BACKENDS)('createTrainStep on %s', (backend) => {
  beforeAll(async () => {
    await selectBackend(backend);
  });

  it.each(MODELS)(
    'the layerwise step updates %s exactly as TF.js autodiff does (plain and FedProx)',
    async (_, shape, classes, make) => {
      for (const mu of [0, 0.5]) {
        const layerwiseModel = await make();
        const autodiffModel = await make();
        autodiffModel.setWeights(layerwiseModel.getWeights());
        const before = layerwiseModel.getWeights().map((w) => w.clone());
        const anchorsFor = (m: tfl.LayersModel) =>
          new Map(m.trainableWeights.map((w, i) => [w.read() as tf.Variable, tf.add(before[i], 0.05)]));
        const proximal = (m: tfl.LayersModel) => (mu > 0 ? { mu, anchors: anchorsFor(m) } : undefined);
        const a = createTrainStep(layerwiseModel, { learningRate: 0.5, proximal: proximal(layerwiseModel) });
        const b = createTrainStep(autodiffModel, {
          learningRate: 0.5,
          proximal: proximal(autodiffModel),
          autodiff: true,
        });
        expect(a.gradients).toBe('layerwise');
        expect(b.gradients).toBe('autodiff');
        // Three steps on different batches (the last one smaller), each from the weights the previous left.
        for (const [step, n] of [7, 7, 3].entries()) {
          const xs = uniform([n, ...shape], 10 * step + mu, 1);
          const labels = Int32Array.from({ length: n }, (_, i) => (i + step) % classes);
          // Cast, not oneHot's dtype argument: the wasm OneHot kernel writes int32 bits whatever the dtype.
          const oneHot = tf.tidy(() =>
            tf.cast(tf.oneHot(tf.tensor1d(labels, 'int32'), classes), 'float32'),
          ) as tf.Tensor2D;
          const outA = tf.tidy(() => a.run(xs, oneHot));
          const outB = tf.tidy(() => b.run(xs, oneHot));
          expect(maxAbsDiff(outA.clipped, outB.clipped)).toBeLessThan(1e-6);
          expect(maxAbsDiff(outA.probs, outB.probs)).toBeLessThan(1e-6);
          tf.dispose([xs, oneHot, outA.clipped, outA.probs, outB.clipped, outB.probs]);
          const wa = layerwiseModel.getWeights();
          const wb = autodiffModel.getWeights();
          wa.forEach((w, i) => expect(maxAbsDiff(w, wb[i])).toBeLessThan(2e-6));
        }
        // The steps moved every weight tensor: the comparison above compared real updates.
        layerwiseModel.getWeights().forEach((w, i) => expect(maxAbsDiff(w, before[i])).toBeGreaterThan(1e-4));
        a.dispose();
        b.dispose();
        tf.dispose(before);
        layerwiseModel.dispose();
        autodiffModel.dispose();
      }
    },
  );
});

describe('planLayerwise', () => {
  beforeAll(async () => {
    await selectBackend(testBackend());
  });

  const dense = (units: number, activation: 'relu' | 'tanh' | 'softmax', inputShape?: number[]) =>
    tfl.layers.dense({ units, activation, ...(inputShape ? { inputShape } : {}) });

  it('names what it cannot plan, so those models train through autodiff', () => {
    const tanh = tfl.sequential({ layers: [dense(4, 'tanh', [3]), dense(2, 'softmax')] });
    expect(planLayerwise(tanh)).toEqual({
      unsupported: expect.stringMatching(/^Dense layer ".+" has activation "tanh"$/),
    });
    const dropout = tfl.sequential({
      layers: [dense(4, 'relu', [3]), tfl.layers.dropout({ rate: 0.5 }), dense(2, 'softmax')],
    });
    expect(planLayerwise(dropout)).toEqual({ unsupported: expect.stringMatching(/is a Dropout$/) });
    const noSoftmax = tfl.sequential({ layers: [dense(4, 'relu', [3]), dense(2, 'relu')] });
    expect(planLayerwise(noSoftmax)).toEqual({ unsupported: expect.stringMatching(/has activation "relu"$/) });
    const frozen = tfl.sequential({ layers: [dense(4, 'relu', [3]), dense(2, 'softmax')] });
    frozen.layers[0].trainable = false;
    expect(planLayerwise(frozen)).toEqual({ unsupported: expect.stringMatching(/is frozen$/) });
    const input = tfl.input({ shape: [3] });
    const functional = tfl.model({ inputs: input, outputs: dense(2, 'softmax').apply(input) as tfl.SymbolicTensor });
    expect(planLayerwise(functional)).toEqual({ unsupported: expect.stringMatching(/not Sequential$/) });
    for (const m of [tanh, dropout, noSoftmax, frozen, functional]) {
      const step = createTrainStep(m, { learningRate: 0.1 });
      expect(step.gradients).toBe('autodiff');
      step.dispose();
      m.dispose();
    }
  });

  it('plans the built-in models, covering every trainable weight once', async () => {
    for (const name of ['mlp', 'mnist-cnn'] as const) {
      const model = await buildModel(
        { kind: 'builtin', name },
        { shape: [28, 28, 1], labelColumn: 'l', numClasses: 10 },
        0,
      );
      const plan = planLayerwise(model);
      if ('unsupported' in plan) throw new Error(plan.unsupported);
      expect(plan.variables).toHaveLength(model.trainableWeights.length);
      expect(new Set(plan.variables)).toEqual(new Set(model.trainableWeights.map((w) => w.read())));
      model.dispose();
    }
  });
});
