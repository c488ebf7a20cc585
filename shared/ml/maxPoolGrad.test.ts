import * as tf from '@tensorflow/tfjs-core';
import { selectBackend } from './backend';
import {
  hasReluMaxPoolGrad,
  isMaxPoolGradRegistered,
  maxPoolGradValues,
  RELU_MAX_POOL_GRAD,
  registerMaxPoolGrad,
  stockMaxPoolGrad,
} from './maxPoolGrad';

interface Config {
  x: [number, number, number, number];
  pool: number | [number, number];
  strides: number | [number, number];
  pad: 'valid' | 'same';
}

const configs: Config[] = [
  { x: [2, 8, 8, 3], pool: 2, strides: 2, pad: 'valid' },
  { x: [3, 9, 7, 2], pool: 3, strides: 2, pad: 'same' }, // overlapping windows, uneven padding
  { x: [2, 7, 9, 4], pool: [2, 3], strides: [1, 2], pad: 'valid' },
  { x: [1, 5, 5, 1], pool: 3, strides: 1, pad: 'same' },
];

/** Deterministic values in [-1, 1), negative ones included; `levels` > 0 quantises them so windows hold ties. */
function values(n: number, seed: number, levels = 0): Float32Array {
  const out = new Float32Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const u = (s / 2 ** 32) * 2 - 1;
    out[i] = levels > 0 ? Math.round(u * levels) / levels : u;
  }
  return out;
}

function grad(x: tf.Tensor4D, c: Config, dy: tf.Tensor4D): Float32Array {
  const y = tf.maxPool(x, c.pool, c.strides, c.pad);
  const dx = tf
    .engine()
    .runKernel(
      'MaxPoolGrad',
      { dy, input: x, output: y },
      { filterSize: c.pool, strides: c.strides, pad: c.pad },
    ) as tf.Tensor;
  const out = dx.dataSync() as Float32Array;
  tf.dispose([y, dx]);
  return out;
}

describe('MaxPoolGrad on typed arrays', () => {
  it('is registered on cpu and wasm by selectBackend, keeping the stock kernels', async () => {
    await selectBackend('cpu');
    await selectBackend('wasm');
    expect(isMaxPoolGradRegistered('cpu')).toBe(true);
    expect(isMaxPoolGradRegistered('wasm')).toBe(true);
    expect(stockMaxPoolGrad('cpu')).toBeDefined();
    registerMaxPoolGrad('wasm'); // idempotent
    expect(isMaxPoolGradRegistered('wasm')).toBe(true);
    expect(() => registerMaxPoolGrad('webgl' as never)).toThrow(/cpu" and "wasm" only/);
  });

  it.each(configs)('equals the stock cpu kernel, ties and negative windows included (%j)', async (c) => {
    await selectBackend('cpu');
    const size = c.x.reduce((a, b) => a * b, 1);
    for (const levels of [0, 3]) {
      const x = tf.tensor4d(values(size, 7 + levels, levels), c.x);
      const y = tf.maxPool(x, c.pool, c.strides, c.pad);
      const dy = tf.tensor4d(values(y.size, 99), y.shape as [number, number, number, number]);
      const ours = grad(x, c, dy);
      const stock = stockMaxPoolGrad('cpu') as NonNullable<ReturnType<typeof stockMaxPoolGrad>>;
      const backend = tf.backend();
      const stockOut = stock.kernelFunc({
        inputs: { dy, input: x, output: y },
        backend,
        attrs: { filterSize: c.pool, strides: c.strides, pad: c.pad },
      }) as tf.TensorInfo;
      const expected = backend.readSync(stockOut.dataId) as Float32Array;
      // Same positions; overlapping windows may add in another order (float rounding).
      expect(Array.from(ours, (v) => v !== 0)).toEqual(Array.from(expected, (v) => v !== 0));
      expect(Math.max(...ours.map((v, i) => Math.abs(v - expected[i])))).toBeLessThan(1e-6);
      // Every dy value lands somewhere (no window is all NaN): the routing conserves the total.
      const total = Array.from(dy.dataSync()).reduce((a, b) => a + b, 0);
      expect(ours.reduce((a, b) => a + b, 0)).toBeCloseTo(total, 4);
      backend.disposeData(stockOut.dataId);
      tf.dispose([x, y, dy]);
    }
  });

  it('gives wasm the same result as cpu, where the stock wasm kernel drops windows of values <= 0', async () => {
    const c = configs[1];
    const size = c.x.reduce((a, b) => a * b, 1);
    const xs = values(size, 5);
    const results: Record<string, Float32Array> = {};
    for (const backend of ['cpu', 'wasm'] as const) {
      await selectBackend(backend);
      const x = tf.tensor4d(xs, c.x);
      const y = tf.maxPool(x, c.pool, c.strides, c.pad);
      const dy = tf.onesLike(y) as tf.Tensor4D;
      results[backend] = grad(x, c, dy);
      tf.dispose([x, y, dy]);
    }
    expect(Array.from(results.wasm)).toEqual(Array.from(results.cpu));
    // One unit of dy per window: nothing dropped.
    const windows = tf.tidy(() => tf.maxPool(tf.zeros(c.x) as tf.Tensor4D, c.pool, c.strides, c.pad).size);
    expect(results.wasm.reduce((a, b) => a + b, 0)).toBe(windows);
    // The stock wasm kernel loses the windows whose values are all negative.
    const x = tf.tensor4d(xs, c.x);
    const y = tf.maxPool(x, c.pool, c.strides, c.pad);
    const dy = tf.onesLike(y);
    const stock = stockMaxPoolGrad('wasm') as NonNullable<ReturnType<typeof stockMaxPoolGrad>>;
    const out = stock.kernelFunc({
      inputs: { dy, input: x, output: y },
      backend: tf.backend(),
      attrs: { filterSize: c.pool, strides: c.strides, pad: c.pad },
    }) as tf.TensorInfo;
    const stockDx = tf.backend().readSync(out.dataId) as Float32Array;
    expect(stockDx.reduce((a, b) => a + b, 0)).toBeLessThan(windows);
    tf.backend().disposeData(out.dataId);
    tf.dispose([x, y, dy]);
  });

  it.each(['cpu', 'wasm'] as const)(
    'on %s, the ReLU-fused kernel equals MaxPoolGrad followed by dy·step(x), ties at 0 included',
    async (backend) => {
      await selectBackend(backend);
      expect(hasReluMaxPoolGrad(backend)).toBe(true);
      for (const c of configs) {
        const size = c.x.reduce((a, b) => a * b, 1);
        // ReLU outputs: a third of the values are exactly 0, quantised so that windows hold ties (and windows of zeros).
        const x = tf.tidy(() => tf.relu(tf.tensor4d(values(size, 11, 3), c.x))) as tf.Tensor4D;
        const y = tf.maxPool(x, c.pool, c.strides, c.pad);
        const dy = tf.tensor4d(values(y.size, 13), y.shape as [number, number, number, number]);
        const attrs = { filterSize: c.pool, strides: c.strides, pad: c.pad };
        const [fused, fusedSums] = tf.engine().runKernel(RELU_MAX_POOL_GRAD, { dy, input: x }, attrs) as tf.Tensor[];
        const separate = tf.tidy(() =>
          tf.mul(tf.engine().runKernel('MaxPoolGrad', { dy, input: x, output: y }, attrs) as tf.Tensor, tf.step(x)),
        );
        const [a, b] = [fused.dataSync(), separate.dataSync()];
        expect(Math.max(...a.map((v, i) => Math.abs(v - b[i])))).toBeLessThan(1e-6);
        // The second output is dx summed per channel (the bias gradient of the layer before the ReLU).
        const sums = tf.tidy(() => tf.sum(separate, [0, 1, 2]).dataSync());
        expect(fusedSums.shape).toEqual([c.x[3]]);
        expect(Math.max(...fusedSums.dataSync().map((v, i) => Math.abs(v - sums[i])))).toBeLessThan(1e-5);
        expect(sums.some((v) => Math.abs(v) > 1e-3)).toBe(true);
        // Windows of zeros pass nothing, and some windows do pass something.
        expect(a.some((v) => v !== 0)).toBe(true);
        expect(Array.from(a).filter((v) => v !== 0).length).toBeLessThan(y.size);
        tf.dispose([x, y, dy, fused, fusedSums, separate]);
      }
    },
  );

  it('writes into a given array, zeroing it first', () => {
    const info = {
      batchSize: 1,
      inHeight: 2,
      inWidth: 2,
      inChannels: 1,
      outHeight: 1,
      outWidth: 1,
      strideHeight: 2,
      strideWidth: 2,
      filterHeight: 2,
      filterWidth: 2,
      padInfo: { top: 0, left: 0, bottom: 0, right: 0, type: 'VALID' as const },
    };
    const into = Float32Array.from([9, 9, 9, 9]);
    expect(maxPoolGradValues([1, 3, 3, 2], [5], info, { into })).toBe(into);
    expect(Array.from(into)).toEqual([0, 5, 0, 0]);
    expect(Array.from(maxPoolGradValues([0, 0, -1, 0], [5], info, { reluInput: true }))).toEqual([0, 0, 0, 0]);
    expect(Array.from(maxPoolGradValues([0, 0, -1, 0], [5], info))).toEqual([5, 0, 0, 0]);
    expect(() => maxPoolGradValues([1, 3, 3, 2], [5], info, { into: new Float32Array(3) })).toThrow(
      /holds 3 values, not 4/,
    );
  });

  it('skips windows holding only NaN, as the cpu kernel does', () => {
    const info = {
      batchSize: 1,
      inHeight: 2,
      inWidth: 4,
      inChannels: 1,
      outHeight: 1,
      outWidth: 2,
      strideHeight: 2,
      strideWidth: 2,
      filterHeight: 2,
      filterWidth: 2,
      padInfo: { top: 0, left: 0, bottom: 0, right: 0, type: 'VALID' as const },
    };
    const dx = maxPoolGradValues([Number.NaN, Number.NaN, 1, 5, Number.NaN, Number.NaN, 5, 2], [10, 20], info);
    expect(Array.from(dx)).toEqual([0, 0, 0, 20, 0, 0, 0, 0]);
    // Windows mixing NaN (and ±∞) with numbers: the first maximum among the numbers, row-major.
    const { NaN: nan, POSITIVE_INFINITY: inf } = Number;
    const mixed = maxPoolGradValues([nan, 1, 2, nan, 5, nan, -inf, inf], [10, 20], info);
    expect(Array.from(mixed)).toEqual([0, 0, 0, 0, 10, 0, 0, 20]);
    // Through a ReLU, a window whose numbers are all 0 passes nothing.
    expect(Array.from(maxPoolGradValues([nan, 0, 1, 3, 0, nan, 2, 3], [10, 20], info, { reluInput: true }))).toEqual([
      0, 0, 0, 20, 0, 0, 0, 0,
    ]);
  });

  it('routes a non-finite dy only to the window maximum on the 2×2 path, as the general scan', () => {
    const info = {
      batchSize: 1,
      inHeight: 2,
      inWidth: 6,
      inChannels: 1,
      outHeight: 1,
      outWidth: 3,
      strideHeight: 2,
      strideWidth: 2,
      filterHeight: 2,
      filterWidth: 2,
      padInfo: { top: 0, left: 0, bottom: 0, right: 0, type: 'VALID' as const },
    };
    const { NaN: nan, POSITIVE_INFINITY: inf } = Number;
    // Rows [1, 3 | 0, 0 | 4, 1] and [2, 0 | 0, 0 | 0, 0]; dy NaN, +∞, −∞; through a ReLU the middle window passes nothing.
    const x = [1, 3, 0, 0, 4, 1, 2, 0, 0, 0, 0, 0];
    const dx = Array.from(
      maxPoolGradValues(x, [nan, inf, -inf], info, { reluInput: true, into: new Float32Array(12).fill(7) }),
    );
    expect(dx).toEqual([0, nan, 0, 0, -inf, 0, 0, 0, 0, 0, 0, 0]);
  });

  it('lays dx out as [inH, inW, batch, c] when asked (batchInside), on the 2×2 path and the general one', () => {
    for (const [filter, stride] of [
      [2, 2],
      [3, 2],
    ]) {
      const [n, h, w, c] = [3, 7, 9, 5];
      const outHeight = Math.floor((h - filter) / stride) + 1;
      const outWidth = Math.floor((w - filter) / stride) + 1;
      const info = {
        batchSize: n,
        inHeight: h,
        inWidth: w,
        inChannels: c,
        outHeight,
        outWidth,
        strideHeight: stride,
        strideWidth: stride,
        filterHeight: filter,
        filterWidth: filter,
        padInfo: { top: 0, left: 0, bottom: 0, right: 0, type: 'VALID' as const },
      };
      const x = values(n * h * w * c, 31);
      const dy = values(n * outHeight * outWidth * c, 32);
      const usualSums = new Float32Array(c);
      const insideSums = new Float32Array(c);
      const usual = maxPoolGradValues(x, dy, info, { reluInput: true, channelSums: usualSums });
      // Garbage in the output array: every value must be written (the last row and column lie outside the windows).
      const inside = maxPoolGradValues(x, dy, info, {
        reluInput: true,
        channelSums: insideSums,
        batchInside: true,
        into: new Float32Array(n * h * w * c).fill(9),
      });
      const expected = tf.tidy(() => tf.transpose(tf.tensor4d(usual, [n, h, w, c]), [1, 2, 0, 3]).dataSync());
      expect(Array.from(inside)).toEqual(Array.from(expected));
      expect(Array.from(insideSums)).toEqual(Array.from(usualSums));
      expect(usual.some((v) => v !== 0)).toBe(true);
    }
  });

  it('routes 2×2 stride-2 windows (the fast path) exactly as the general scan, on random and tied values', () => {
    // An odd-sized input: the windows leave out the last row and column.
    const shape: [number, number, number, number] = [3, 7, 9, 5];
    const size = shape.reduce((a, b) => a * b, 1);
    const geometry = (filter: number) => ({
      batchSize: 3,
      inHeight: 7,
      inWidth: 9,
      inChannels: 5,
      outHeight: 3,
      outWidth: 4,
      strideHeight: 2,
      strideWidth: 2,
      filterHeight: filter,
      filterWidth: filter,
      padInfo: { top: 0, left: 0, bottom: 0, right: 0, type: 'VALID' as const },
    });
    for (const levels of [0, 2]) {
      const x = values(size, 21 + levels, levels);
      const dy = values(3 * 3 * 4 * 5, 23);
      for (const reluInput of [false, true]) {
        const fast = maxPoolGradValues(x, dy, geometry(2), { reluInput });
        // The definition, scanned directly: each window's first maximum (above 0 through a ReLU) gets its dy.
        const expected = new Float32Array(size);
        let o = 0;
        for (let b = 0; b < 3; b++)
          for (let i = 0; i < 3; i++)
            for (let j = 0; j < 4; j++)
              for (let d = 0; d < 5; d++, o++) {
                let [at, best] = [-1, reluInput ? 0 : Number.NEGATIVE_INFINITY];
                for (const [r, c] of [
                  [0, 0],
                  [0, 1],
                  [1, 0],
                  [1, 1],
                ]) {
                  const p = ((b * 7 + 2 * i + r) * 9 + 2 * j + c) * 5 + d;
                  if (x[p] > best) [at, best] = [p, x[p]];
                }
                if (at >= 0) expected[at] += dy[o];
              }
        expect(Array.from(fast)).toEqual(Array.from(expected));
      }
    }
  });
});
