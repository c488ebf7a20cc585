import {
  backend_util,
  getKernel,
  type KernelConfig,
  type KernelFunc,
  MaxPoolGrad,
  type MaxPoolGradAttrs,
  registerKernel,
  type TensorInfo,
  unregisterKernel,
} from '@tensorflow/tfjs-core';
import { TributaryError } from '../errors';
import { runTypedArrayKernel, type TypedArrayBackend } from './typedArrayKernel';

/**
 * The gradient of 2-D max pooling with respect to its input, on plain typed arrays: each window's
 * dy goes to the first position (row-major within the window) holding the window's maximum, as
 * TensorFlow and TF.js's cpu backend route it; windows that overlap add up.
 *
 * Why: the wasm backend's MaxPoolGrad kernel takes ~3 ms for one 32-digit batch of the MNIST CNN's first
 * pool (about a third of a training step), and it starts each window's search at FLT_MIN, so a window
 * whose values are all ≤ 0 passes no gradient at all (and ties go to the last maximum). The cpu
 * backend's kernel reads every element through TensorBuffer.get. This one scans x once per window.
 *
 * NHWC, dilation 1 (what tf.maxPool's gradient supports).
 *
 * A second kernel, `RELU_MAX_POOL_GRAD`, is the same routing for a pool whose input is a ReLU's output,
 * taken through that ReLU: a window passes its dy only when its maximum is > 0. That is MaxPoolGrad
 * followed by dy·step(x) (x ≥ 0 there, and only maxima receive anything), in one pass instead of three
 * kernels over the pool's largest tensor. Its second output is dx summed over all but the channel axis,
 * which is the bias gradient of the layer before the ReLU (one more tf.sum over that tensor saved).
 */

/**
 * Name of the fused kernel: inputs {dy, input}, attributes ReluMaxPoolGradAttrs; outputs [dx at the ReLU's
 * input, Σ dx per channel].
 */
export const RELU_MAX_POOL_GRAD = 'TributaryReluMaxPoolGrad';

/** RELU_MAX_POOL_GRAD's attributes: MaxPoolGrad's, and whether dx comes as [inH, inW, batch, c]. */
export interface ReluMaxPoolGradAttrs extends MaxPoolGradAttrs {
  batchInside?: boolean;
}

/** Marks our kernel function, so registration is idempotent even across module copies. */
const OURS = Symbol.for('tributary.maxPoolGrad');

/** The kernels this module replaced, per backend, so tests can still run them. */
const stockKernels = new Map<string, KernelConfig>();

/** Backends this kernel supports: both keep tensor data in memory readable with readSync. */
export type MaxPoolGradBackend = TypedArrayBackend;

/** Geometry of one max pool, the subset of backend_util.Conv2DInfo the kernel needs. */
export type PoolGradGeometry = Pick<
  backend_util.Conv2DInfo,
  | 'batchSize'
  | 'inHeight'
  | 'inWidth'
  | 'inChannels'
  | 'outHeight'
  | 'outWidth'
  | 'strideHeight'
  | 'strideWidth'
  | 'filterHeight'
  | 'filterWidth'
  | 'padInfo'
>;

/** Options of maxPoolGradValues. */
export interface PoolGradOptions {
  /** x is a ReLU's output and dx is wanted at the ReLU's input: windows whose maximum is ≤ 0 pass nothing. */
  reluInput?: boolean;
  /** Where to write dx (zeroed first), e.g. a wasm output on the heap; a new array otherwise. */
  into?: Float32Array;
  /** If given, receives dx summed over batch, rows and columns, per channel (accumulated in float64). */
  channelSums?: Float32Array;
  /**
   * Lay dx out as [inH, inW, batch, c] instead of [batch, inH, inW, c]: the layout in which a stride-1
   * convolution's filter gradient takes it on wasm (see layerwiseGradients), which saves a transpose.
   */
  batchInside?: boolean;
}

/** dx for max pooling: dy [batch, outH, outW, c] routed to each window's first maximum in x [batch, inH, inW, c]. */
export function maxPoolGradValues(
  x: ArrayLike<number>,
  dy: ArrayLike<number>,
  info: PoolGradGeometry,
  options: PoolGradOptions = {},
): Float32Array {
  const { batchSize, inHeight, inWidth, inChannels: channels, outHeight, outWidth } = info;
  const size = batchSize * inHeight * inWidth * channels;
  if (options.into && options.into.length !== size)
    throw new Error(`maxPoolGradValues: output holds ${options.into.length} values, not ${size}`);
  // A maximum must beat −∞ (any window not all NaN has one) or, through a ReLU, 0.
  const floor = options.reluInput ? 0 : Number.NEGATIVE_INFINITY;
  const sums = options.channelSums ? new Float64Array(channels) : null;
  const tiles2x2 =
    info.filterHeight === 2 &&
    info.filterWidth === 2 &&
    info.strideHeight === 2 &&
    info.strideWidth === 2 &&
    info.padInfo.top === 0 &&
    info.padInfo.left === 0;
  if (tiles2x2) {
    const dx = options.into ?? new Float32Array(size);
    // The windows write every value they cover; a last row or column outside them must be zeroed.
    if (inHeight !== 2 * outHeight || inWidth !== 2 * outWidth) dx.fill(0);
    poolGrad2x2(x, dy, info, floor, dx, sums, options.batchInside === true);
    if (sums) options.channelSums?.set(sums);
    return dx;
  }
  if (options.batchInside) {
    // Rare (only 2×2 pools ask for it): compute in the usual layout, then move the batch axis inside.
    const usual = maxPoolGradValues(x, dy, info, { ...options, into: undefined, batchInside: false });
    const dx = options.into ?? new Float32Array(size);
    const pixels = inHeight * inWidth;
    for (let b = 0; b < batchSize; b++) {
      for (let px = 0; px < pixels; px++) {
        dx.set(
          usual.subarray((b * pixels + px) * channels, (b * pixels + px + 1) * channels),
          (px * batchSize + b) * channels,
        );
      }
    }
    return dx;
  }
  const dx = options.into ? options.into.fill(0) : new Float32Array(size);
  const rowStride = inWidth * channels;
  let o = 0;
  for (let b = 0; b < batchSize; b++) {
    const batchBase = b * inHeight * rowStride;
    for (let yR = 0; yR < outHeight; yR++) {
      const rCorner = yR * info.strideHeight - info.padInfo.top;
      const rMin = Math.max(0, rCorner);
      const rMax = Math.min(inHeight, rCorner + info.filterHeight);
      for (let yC = 0; yC < outWidth; yC++) {
        const cCorner = yC * info.strideWidth - info.padInfo.left;
        const cMin = Math.max(0, cCorner);
        const cMax = Math.min(inWidth, cCorner + info.filterWidth);
        for (let d = 0; d < channels; d++, o++) {
          let best = floor;
          let at = -1;
          for (let r = rMin; r < rMax; r++) {
            const rowBase = batchBase + r * rowStride + d;
            for (let c = cMin; c < cMax; c++) {
              const p = rowBase + c * channels;
              // Strictly greater: the first maximum wins, and NaN never does (as in TF.js's cpu backend).
              if (x[p] > best) {
                best = x[p];
                at = p;
              }
            }
          }
          if (at >= 0) {
            dx[at] += dy[o];
            if (sums) sums[d] += dy[o];
          }
        }
      }
    }
  }
  if (sums) options.channelSums?.set(sums);
  return dx;
}

/** The first of `positions` holding a value above `floor` and above every earlier one, or −1. */
function firstMaximum(x: ArrayLike<number>, positions: readonly number[], floor: number): number {
  let at = -1;
  let best = floor;
  for (const k of positions) {
    if (x[k] > best) {
      at = k;
      best = x[k];
    }
  }
  return at;
}

/**
 * The common 2×2, stride-2, unpadded pool (windows tile the input): the first maximum of each window
 * found with comparisons whose outcomes pick values rather than steer loops, and all four of the
 * window's dx written (the gradient at the maximum, 0 elsewhere) with 0/1 products instead of a
 * zeroed array and a conditional store: ~35 % faster than the general scan on ReLU outputs (its branches
 * mispredict half the time), and ~15 % faster again than zero-fill and store. A window holding NaN takes
 * the general rule. `batchInside`: dx laid out [inH, inW, batch, c].
 */
function poolGrad2x2(
  x: ArrayLike<number>,
  dy: ArrayLike<number>,
  info: PoolGradGeometry,
  floor: number,
  dx: Float32Array,
  sums: Float64Array | null,
  batchInside: boolean,
): void {
  const { batchSize, inHeight, inWidth, inChannels: channels, outHeight, outWidth } = info;
  const rowStride = inWidth * channels;
  // Steps in dx between a window's columns and rows, and from one image to the next.
  const dxColumn = batchInside ? batchSize * channels : channels;
  const dxRow = inWidth * dxColumn;
  let o = 0;
  for (let b = 0; b < batchSize; b++) {
    for (let yR = 0; yR < outHeight; yR++) {
      const rowBase = (b * inHeight + 2 * yR) * rowStride;
      const dxRowBase = batchInside ? 2 * yR * dxRow + b * channels : rowBase;
      for (let yC = 0; yC < outWidth; yC++) {
        const corner = rowBase + 2 * yC * channels;
        const dxCorner = dxRowBase + 2 * yC * dxColumn;
        for (let d = 0; d < channels; d++, o++) {
          const p = corner + d;
          // Plain locals, no destructuring: this loop runs ~40k times per batch.
          const q = p + channels;
          const r = p + rowStride;
          const s = r + channels;
          const xp = x[p];
          const xq = x[q];
          const xr = x[r];
          const xs = x[s];
          // Strictly greater: on ties the earlier position (row-major) keeps the gradient.
          // (Ternaries, not Math.max: they compile to selects without Math.max's NaN and −0 handling.)
          const topQ = xq > xp ? 1 : 0;
          const bottomS = xs > xr ? 1 : 0;
          const topMax = topQ ? xq : xp;
          const bottomMax = bottomS ? xs : xr;
          const below = bottomMax > topMax ? 1 : 0;
          const best = below ? bottomMax : topMax;
          const pd = dxCorner + d;
          const gy = dy[o];
          // NaN if x holds a NaN (or −∞ and +∞) or dy is not finite (the products below would spread it).
          const check = xp + xq + xr + xs + (gy - gy);
          // biome-ignore lint/suspicious/noSelfCompare: the NaN test, inline in this hot loop.
          if (check !== check) {
            // NaN never wins: the general rule, and plain stores.
            const at = firstMaximum(x, [p, q, r, s], floor);
            const g = at >= 0 ? gy : 0;
            dx[pd] = at === p ? g + 0 : 0;
            dx[pd + dxColumn] = at === q ? g + 0 : 0;
            dx[pd + dxRow] = at === r ? g + 0 : 0;
            dx[pd + dxRow + dxColumn] = at === s ? g + 0 : 0;
            if (sums) sums[d] += g;
            continue;
          }
          const g = best > floor ? gy : 0;
          const above = 1 - below;
          // + 0: a negative g times 0 is −0, and the general scan's 0 + dy gives +0.
          dx[pd] = g * (above & (1 - topQ)) + 0;
          dx[pd + dxColumn] = g * (above & topQ) + 0;
          dx[pd + dxRow] = g * (below & (1 - bottomS)) + 0;
          dx[pd + dxRow + dxColumn] = g * (below & bottomS) + 0;
          if (sums) sums[d] += g;
        }
      }
    }
  }
}

function checkedGeometry(x: TensorInfo, attrs: MaxPoolGradAttrs): backend_util.Conv2DInfo {
  if (x.shape.length !== 4)
    throw new TributaryError('MODEL_SHAPE_MISMATCH', `MaxPoolGrad expects a rank-4 input, got shape [${x.shape}].`);
  const { filterSize, strides, pad, dimRoundingMode } = attrs;
  return backend_util.computePool2DInfo(
    x.shape as [number, number, number, number],
    filterSize,
    strides,
    1,
    pad,
    dimRoundingMode,
  );
}

function makeKernelFunc(backendName: MaxPoolGradBackend, reluInput: boolean): KernelFunc {
  const kernelFunc: KernelFunc = ({ inputs, backend, attrs }) => {
    const { dy, input } = inputs as { dy: TensorInfo; input: TensorInfo };
    const info = checkedGeometry(input, attrs as unknown as MaxPoolGradAttrs);
    // RELU_MAX_POOL_GRAD may lay dx out [inH, inW, batch, c] (PoolGradOptions.batchInside).
    const batchInside = reluInput && (attrs as unknown as ReluMaxPoolGradAttrs).batchInside === true;
    const [n, h, w, channels] = input.shape;
    const shape = batchInside ? [h, w, n, channels] : [n, h, w, channels];
    const outputShapes = reluInput ? [shape, [channels]] : [shape];
    const outs = runTypedArrayKernel(backendName, backend, [input, dy], outputShapes, ([x, g], [into, channelSums]) =>
      maxPoolGradValues(x, g, info, { reluInput, into, channelSums, batchInside }),
    );
    return reluInput ? outs : outs[0];
  };
  Object.defineProperty(kernelFunc, OURS, { value: true });
  return kernelFunc;
}

function isOurs(config: KernelConfig | undefined): boolean {
  return config !== undefined && (config.kernelFunc as unknown as Record<symbol, unknown>)[OURS] === true;
}

/**
 * Registers the typed-array MaxPoolGrad for a backend, replacing the stock kernel (which is kept:
 * see `stockMaxPoolGrad`). Calling it again is a no-op.
 */
export function registerMaxPoolGrad(backendName: MaxPoolGradBackend): void {
  if (backendName !== 'cpu' && backendName !== 'wasm') {
    throw new TributaryError(
      'BACKEND_UNAVAILABLE',
      `The typed-array MaxPoolGrad runs on "cpu" and "wasm" only, not "${backendName}".`,
    );
  }
  const existing = getKernel(MaxPoolGrad, backendName);
  if (isOurs(existing)) return;
  if (existing) {
    stockKernels.set(backendName, existing);
    // Unregister first: registering over a kernel only warns, and we want no warning.
    unregisterKernel(MaxPoolGrad, backendName);
  }
  registerKernel({ kernelName: MaxPoolGrad, backendName, kernelFunc: makeKernelFunc(backendName, false) });
  if (!getKernel(RELU_MAX_POOL_GRAD, backendName))
    registerKernel({ kernelName: RELU_MAX_POOL_GRAD, backendName, kernelFunc: makeKernelFunc(backendName, true) });
}

/** Whether `RELU_MAX_POOL_GRAD` runs on `backendName` (registered with the typed-array MaxPoolGrad). */
export function hasReluMaxPoolGrad(backendName: string): boolean {
  return getKernel(RELU_MAX_POOL_GRAD, backendName) !== undefined;
}

/** Whether the typed-array kernel is the one registered for `backendName`. */
export function isMaxPoolGradRegistered(backendName: string): boolean {
  return isOurs(getKernel(MaxPoolGrad, backendName));
}

/** The kernel that `registerMaxPoolGrad` replaced for this backend, if any; for comparisons. */
export function stockMaxPoolGrad(backendName: string): KernelConfig | undefined {
  return stockKernels.get(backendName);
}
