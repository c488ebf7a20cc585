import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { selectBackend } from './backend';
import {
  conv2dBackpropFilterValues,
  type FilterGradMethod,
  isConv2DBackpropFilterRegistered,
  registerConv2DBackpropFilter,
  restoreStockConv2DBackpropFilter,
  stockConv2DBackpropFilter,
} from './conv2dBackpropFilter';
import { getNamedWeights, setNamedWeights } from './weights';

type Pad = 'same' | 'valid' | [[number, number], [number, number], [number, number], [number, number]];

interface Config {
  x: [number, number, number, number];
  filter: [number, number];
  outC: number;
  strides: number | [number, number];
  pad: Pad;
}

const configs: Config[] = [
  { x: [2, 9, 9, 1], filter: [3, 3], outC: 4, strides: 1, pad: 'valid' },
  { x: [3, 10, 10, 3], filter: [3, 3], outC: 5, strides: 1, pad: 'same' },
  { x: [2, 11, 9, 4], filter: [5, 5], outC: 8, strides: 2, pad: 'same' },
  { x: [4, 12, 12, 8], filter: [5, 5], outC: 16, strides: 2, pad: 'valid' },
  { x: [2, 8, 7, 2], filter: [2, 3], outC: 3, strides: [2, 1], pad: 'valid' },
  {
    x: [1, 7, 7, 3],
    filter: [3, 3],
    outC: 6,
    strides: 1,
    pad: [
      [0, 0],
      [1, 2],
      [2, 0],
      [0, 0],
    ],
  },
  { x: [5, 6, 6, 7], filter: [1, 1], outC: 9, strides: 3, pad: 'same' },
];

/** Deterministic pseudo-random values, a fraction of them zero (like ReLU outputs). */
function values(n: number, seed: number, zeroFraction = 0): Float32Array {
  const out = new Float32Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const u = s / 2 ** 32;
    out[i] = u < zeroFraction ? 0 : u * 2 - 1;
  }
  return out;
}

/** dW by the stock cpu kernel (through runKernel, after putting the stock one back). */
function stockGradient(x: tf.Tensor4D, dy: tf.Tensor4D, c: Config): Float32Array {
  restoreStockConv2DBackpropFilter('cpu');
  try {
    const attrs = { strides: c.strides, pad: c.pad, dataFormat: 'NHWC', filterShape: [...c.filter, c.x[3], c.outC] };
    const dw = tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, attrs as never) as tf.Tensor;
    const out = dw.dataSync() as Float32Array;
    dw.dispose();
    return out;
  } finally {
    registerConv2DBackpropFilter('cpu');
  }
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

beforeAll(async () => {
  await selectBackend('cpu');
});

describe('Conv2DBackpropFilter (typed arrays)', () => {
  it('replaces the stock cpu kernel and keeps it', () => {
    expect(isConv2DBackpropFilterRegistered('cpu')).toBe(true);
    expect(stockConv2DBackpropFilter('cpu')?.backendName).toBe('cpu');
    registerConv2DBackpropFilter('cpu');
    expect(isConv2DBackpropFilterRegistered('cpu')).toBe(true);
  });

  it.each(
    configs.map(
      (c) => [`x ${c.x} filter ${c.filter}×${c.outC} stride ${c.strides} pad ${JSON.stringify(c.pad)}`, c] as const,
    ),
  )('matches the stock cpu kernel, both loop orders: %s', (_, c) => {
    const x = tf.tensor4d(
      values(
        c.x.reduce((a, b) => a * b),
        1,
        0.3,
      ),
      c.x,
    );
    const filter = tf.zeros([...c.filter, c.x[3], c.outC]) as tf.Tensor4D;
    const y = tf.conv2d(x, filter, c.strides, c.pad);
    const dy = tf.tensor4d(values(y.size, 2), y.shape as [number, number, number, number]);
    const expected = stockGradient(x, dy, c);
    const scale = Math.max(1, ...Array.from(expected, Math.abs));
    // Through the registered kernel, as training calls it.
    const [grad] = tf.grads((f: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(x, f as tf.Tensor4D, c.strides, c.pad), dy)))([
      filter,
    ]);
    expect(maxAbsDiff(grad.dataSync(), expected) / scale).toBeLessThan(1e-5);
    // And each loop order directly.
    const info = tf.backend_util.computeConv2DInfo(c.x, [...c.filter, c.x[3], c.outC], c.strides, 1, c.pad);
    for (const method of ['dot', 'scatter'] as FilterGradMethod[]) {
      const got = conv2dBackpropFilterValues(x.dataSync(), dy.dataSync(), info, method);
      expect(maxAbsDiff(got, expected) / scale).toBeLessThan(1e-5);
    }
    tf.dispose([x, filter, y, dy, grad]);
  });

  it('rejects NCHW and dilations other than 1', () => {
    const x = tf.zeros([1, 4, 4, 1]);
    const dy = tf.zeros([1, 2, 2, 1]);
    const run = (attrs: object) => () =>
      tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, {
        strides: 1,
        pad: 'valid',
        dataFormat: 'NHWC',
        filterShape: [3, 3, 1, 1],
        ...attrs,
      } as never);
    expect(run({ dataFormat: 'NCHW' })).toThrow(/NHWC/);
    expect(run({ dilations: 2 })).toThrow(/dilation 1 only/);
    tf.dispose([x, dy]);
  });

  it('one CNN training step gives the same weights on wasm as on cpu', async () => {
    const build = () =>
      tfl.sequential({
        layers: [
          tfl.layers.conv2d({
            name: 'c1',
            inputShape: [12, 12, 2],
            filters: 4,
            kernelSize: 3,
            activation: 'relu',
            kernelInitializer: tfl.initializers.glorotUniform({ seed: 1 }),
          }),
          tfl.layers.conv2d({
            name: 'c2',
            filters: 6,
            kernelSize: 3,
            strides: 2,
            padding: 'same',
            activation: 'relu',
            kernelInitializer: tfl.initializers.glorotUniform({ seed: 2 }),
          }),
          tfl.layers.flatten({ name: 'f' }),
          tfl.layers.dense({
            name: 'd',
            units: 3,
            activation: 'softmax',
            kernelInitializer: tfl.initializers.glorotUniform({ seed: 3 }),
          }),
        ],
      });
    const xs = values(8 * 12 * 12 * 2, 5);
    const ys = Int32Array.from({ length: 8 }, (_, i) => i % 3);
    const step = async (backend: 'cpu' | 'wasm', init?: ReturnType<typeof getNamedWeights>) => {
      await selectBackend(backend);
      const model = build();
      if (init) setNamedWeights(model, init);
      const before = getNamedWeights(model);
      const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
      const opt = tf.train.sgd(0.5);
      tf.tidy(() => {
        const x = tf.tensor4d(xs, [8, 12, 12, 2]);
        const labels = tf.oneHot(tf.tensor1d(ys, 'int32'), 3);
        opt.minimize(
          () => tf.losses.softmaxCrossEntropy(labels, model.apply(x) as tf.Tensor) as tf.Scalar,
          false,
          vars,
        );
      });
      opt.dispose();
      const after = getNamedWeights(model);
      model.dispose();
      return { before, after };
    };
    const cpu = await step('cpu');
    const wasm = await step('wasm', cpu.before);
    await selectBackend('cpu');
    for (let i = 0; i < cpu.after.length; i++) {
      expect(wasm.after[i].name).toBe(cpu.after[i].name);
      expect(maxAbsDiff(wasm.after[i].data, cpu.after[i].data)).toBeLessThan(1e-5);
      // The step really moved the weights.
      expect(maxAbsDiff(cpu.after[i].data, cpu.before[i].data)).toBeGreaterThan(1e-4);
    }
  });
});
