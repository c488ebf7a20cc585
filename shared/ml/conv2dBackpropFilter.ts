import {
  backend_util,
  Conv2DBackpropFilter,
  type Conv2DBackpropFilterAttrs,
  getKernel,
  type KernelConfig,
  type KernelFunc,
  registerKernel,
  type TensorInfo,
  unregisterKernel,
} from '@tensorflow/tfjs-core';
import { TributaryError } from '../errors';
import { runTypedArrayKernel, type TypedArrayBackend } from './typedArrayKernel';

/**
 * The gradient of conv2d with respect to its filter, on plain typed arrays.
 *
 * The wasm backend ships no Conv2DBackpropFilter kernel (so CNNs cannot train on it), and the cpu
 * backend's one reads every element through TensorBuffer.get in a filter-major loop (~1.5 s per batch
 * of 64 for a small CNN's second layer). With K = filterHeight·filterWidth·inChannels filter taps and
 * P = batch·outHeight·outWidth output pixels, the gradient is a K×P by P×outChannels product:
 *
 *   dW[r, c, i, o] = Σ_{b, yR, yC} x[b, yR·sh + r − padTop, yC·sw + c − padLeft, i] · dy[b, yR, yC, o]
 *
 * Two loop orders compute it, chosen by how sparse x is (ReLU outputs and image backgrounds are
 * mostly zeros):
 *  - dense x: "dot" form. Per chunk of output rows, dy is transposed so each output channel is
 *    contiguous, one filter tap's inputs are gathered into a contiguous column, and 2 taps × 4
 *    channels of dot products run with eight accumulators held in registers.
 *  - sparse x: "scatter" form. x is walked once in memory order and every non-zero input adds
 *    x·dy[pixel, :] into the (cache-resident) gradient of each tap that sees it, so zeros cost one test.
 * Sums are kept in float64 and rounded to float32 once.
 *
 * NHWC only, dilation 1 (TF.js itself supports no other dilation in conv2d gradients).
 */

/** Marks our kernel function, so registration is idempotent even across module copies. */
const OURS = Symbol.for('tributary.conv2dBackpropFilter');

/** The kernels this module replaced, per backend, so tests and benchmarks can still run them. */
const stockKernels = new Map<string, KernelConfig>();

/** Above this fraction of zeros in x, skipping zeros (scatter form) beats register blocking (dot form); measured on MNIST CNN layers. */
const SPARSE_X_FRACTION = 0.65;

/** Float64 values the dot form's per-chunk buffers may hold (~2 MiB): keeps them in cache and bounds memory. */
const DOT_CHUNK_VALUES = 1 << 18;

/** Backends this kernel supports: both keep tensor data in memory readable with readSync. */
export type Conv2DBackpropFilterBackend = TypedArrayBackend;

/** Geometry of one conv2d, the subset of backend_util.Conv2DInfo the kernel needs. */
export type FilterGradGeometry = Pick<
  backend_util.Conv2DInfo,
  | 'batchSize'
  | 'inHeight'
  | 'inWidth'
  | 'inChannels'
  | 'outHeight'
  | 'outWidth'
  | 'outChannels'
  | 'filterHeight'
  | 'filterWidth'
  | 'strideHeight'
  | 'strideWidth'
  | 'padInfo'
>;

/** Which loop order to use; 'auto' picks by the sparsity of x. */
export type FilterGradMethod = 'auto' | 'dot' | 'scatter';

function zeroFraction(x: ArrayLike<number>): number {
  let zeros = 0;
  for (let i = 0; i < x.length; i++) if (x[i] === 0) zeros++;
  return x.length === 0 ? 1 : zeros / x.length;
}

/** Scatter form: every non-zero x adds x · dy[pixel, :] into the gradient of each filter tap that sees it. */
function accumulateScatter(
  x: ArrayLike<number>,
  dy: ArrayLike<number>,
  info: FilterGradGeometry,
  acc: Float64Array,
): void {
  const { batchSize, inHeight, inWidth, inChannels, outHeight, outWidth, outChannels } = info;
  const { filterHeight, filterWidth, strideHeight, strideWidth } = info;
  const padTop = info.padInfo.top;
  const padLeft = info.padInfo.left;
  let xi = 0;
  for (let b = 0; b < batchSize; b++) {
    for (let xR = 0; xR < inHeight; xR++) {
      // Input row xR meets filter row r at output row yR = (xR + padTop − r) / strideHeight when that is an integer.
      const tR = xR + padTop;
      for (let xC = 0; xC < inWidth; xC++) {
        const tC = xC + padLeft;
        for (let i = 0; i < inChannels; i++, xi++) {
          const xv = x[xi];
          if (xv === 0) continue;
          for (let r = tR % strideHeight; r < filterHeight; r += strideHeight) {
            const yR = (tR - r) / strideHeight;
            if (yR >= outHeight) continue;
            if (yR < 0) break;
            const dyRow = (b * outHeight + yR) * outWidth;
            for (let c = tC % strideWidth; c < filterWidth; c += strideWidth) {
              const yC = (tC - c) / strideWidth;
              if (yC >= outWidth) continue;
              if (yC < 0) break;
              const d = (dyRow + yC) * outChannels;
              const w = ((r * filterWidth + c) * inChannels + i) * outChannels;
              for (let o = 0; o < outChannels; o++) acc[w + o] += xv * dy[d + o];
            }
          }
        }
      }
    }
  }
}

/** Dot form: per chunk of output rows, acc[tap, o] += column(tap) · dyT[o] with 2×4 register blocking. */
function accumulateDot(x: ArrayLike<number>, dy: ArrayLike<number>, info: FilterGradGeometry, acc: Float64Array): void {
  const { batchSize, inHeight, inWidth, inChannels, outHeight, outWidth, outChannels } = info;
  const { filterHeight, filterWidth, strideHeight, strideWidth } = info;
  const padTop = info.padInfo.top;
  const padLeft = info.padInfo.left;
  const taps = filterHeight * filterWidth * inChannels;
  const rows = batchSize * outHeight;
  const rowsPerChunk = Math.max(1, Math.min(rows, Math.floor(DOT_CHUNK_VALUES / (outWidth * (outChannels + 2)))));
  const maxP = rowsPerChunk * outWidth;
  const dyT = new Float64Array(outChannels * maxP);
  const cols = new Float64Array(2 * maxP);

  /** Gathers tap k's input for output rows [g0, g1) into cols[at, at + P). */
  const gather = (k: number, g0: number, g1: number, at: number): void => {
    const i = k % inChannels;
    const rc = (k - i) / inChannels;
    const c = rc % filterWidth;
    const r = (rc - c) / filterWidth;
    // Output columns whose input column xC = yC·sw + c − padLeft lies inside the image.
    const yCMin = Math.min(outWidth, Math.max(0, Math.ceil((padLeft - c) / strideWidth)));
    const yCMax = Math.max(yCMin, Math.min(outWidth, Math.floor((inWidth - 1 + padLeft - c) / strideWidth) + 1));
    let p = at;
    for (let g = g0; g < g1; g++) {
      const b = Math.floor(g / outHeight);
      const xR = (g - b * outHeight) * strideHeight - padTop + r;
      if (xR < 0 || xR >= inHeight) {
        cols.fill(0, p, p + outWidth);
        p += outWidth;
        continue;
      }
      const base = ((b * inHeight + xR) * inWidth + c - padLeft) * inChannels + i;
      const step = strideWidth * inChannels;
      let yC = 0;
      for (; yC < yCMin; yC++) cols[p++] = 0;
      for (; yC < yCMax; yC++) cols[p++] = x[base + yC * step];
      for (; yC < outWidth; yC++) cols[p++] = 0;
    }
  };

  for (let g0 = 0; g0 < rows; g0 += rowsPerChunk) {
    const g1 = Math.min(rows, g0 + rowsPerChunk);
    const P = (g1 - g0) * outWidth;
    const dyBase = g0 * outWidth * outChannels;
    for (let p = 0; p < P; p++) {
      const from = dyBase + p * outChannels;
      for (let o = 0; o < outChannels; o++) dyT[o * P + p] = dy[from + o];
    }
    let k = 0;
    for (; k + 2 <= taps; k += 2) {
      gather(k, g0, g1, 0);
      gather(k + 1, g0, g1, P);
      const ka = k * outChannels;
      const kb = ka + outChannels;
      let o = 0;
      for (; o + 4 <= outChannels; o += 4) {
        let a0 = 0,
          a1 = 0,
          a2 = 0,
          a3 = 0,
          b0 = 0,
          b1 = 0,
          b2 = 0,
          b3 = 0; // prettier-ignore
        const d0 = o * P;
        const d1 = d0 + P;
        const d2 = d1 + P;
        const d3 = d2 + P;
        for (let q = 0; q < P; q++) {
          const u = cols[q];
          const v = cols[P + q];
          const e0 = dyT[d0 + q];
          const e1 = dyT[d1 + q];
          const e2 = dyT[d2 + q];
          const e3 = dyT[d3 + q];
          a0 += u * e0;
          a1 += u * e1;
          a2 += u * e2;
          a3 += u * e3; // prettier-ignore
          b0 += v * e0;
          b1 += v * e1;
          b2 += v * e2;
          b3 += v * e3; // prettier-ignore
        }
        acc[ka + o] += a0;
        acc[ka + o + 1] += a1;
        acc[ka + o + 2] += a2;
        acc[ka + o + 3] += a3; // prettier-ignore
        acc[kb + o] += b0;
        acc[kb + o + 1] += b1;
        acc[kb + o + 2] += b2;
        acc[kb + o + 3] += b3; // prettier-ignore
      }
      for (; o < outChannels; o++) {
        let a = 0;
        let b = 0;
        const d = o * P;
        for (let q = 0; q < P; q++) {
          a += cols[q] * dyT[d + q];
          b += cols[P + q] * dyT[d + q];
        }
        acc[ka + o] += a;
        acc[kb + o] += b;
      }
    }
    if (k < taps) {
      gather(k, g0, g1, 0);
      for (let o = 0; o < outChannels; o++) {
        let a = 0;
        const d = o * P;
        for (let q = 0; q < P; q++) a += cols[q] * dyT[d + q];
        acc[k * outChannels + o] += a;
      }
    }
  }
}

/** Computes dW (shape [filterHeight, filterWidth, inChannels, outChannels]) from NHWC x and dy. */
export function conv2dBackpropFilterValues(
  x: ArrayLike<number>,
  dy: ArrayLike<number>,
  info: FilterGradGeometry,
  method: FilterGradMethod = 'auto',
): Float32Array {
  const acc = new Float64Array(info.filterHeight * info.filterWidth * info.inChannels * info.outChannels);
  const scatter = method === 'scatter' || (method === 'auto' && zeroFraction(x) >= SPARSE_X_FRACTION);
  if (scatter) accumulateScatter(x, dy, info, acc);
  else accumulateDot(x, dy, info, acc);
  return Float32Array.from(acc);
}

function checkedGeometry(x: TensorInfo, attrs: Conv2DBackpropFilterAttrs): backend_util.Conv2DInfo {
  const { strides, pad, dataFormat, dimRoundingMode, filterShape } = attrs;
  if (dataFormat !== undefined && dataFormat !== 'NHWC') {
    throw new TributaryError(
      'JOB_SPEC_INVALID',
      `Conv2DBackpropFilter supports NHWC (channels-last) data only, got ${dataFormat}.`,
    );
  }
  const dilations = (attrs as { dilations?: number | [number, number] }).dilations;
  if (dilations !== undefined && [dilations].flat().some((d) => d !== 1)) {
    throw new TributaryError(
      'JOB_SPEC_INVALID',
      `Conv2DBackpropFilter supports dilation 1 only, got ${JSON.stringify(dilations)}.`,
    );
  }
  if (x.shape.length !== 4)
    throw new TributaryError(
      'MODEL_SHAPE_MISMATCH',
      `Conv2DBackpropFilter expects a rank-4 x, got shape [${x.shape}].`,
    );
  return backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number],
    filterShape,
    strides,
    1,
    pad,
    dimRoundingMode,
    false,
    'channelsLast',
  );
}

function makeKernelFunc(backendName: Conv2DBackpropFilterBackend): KernelFunc {
  const kernelFunc: KernelFunc = ({ inputs, backend, attrs }) => {
    const { x, dy } = inputs as { x: TensorInfo; dy: TensorInfo };
    const info = checkedGeometry(x, attrs as unknown as Conv2DBackpropFilterAttrs);
    const [out] = runTypedArrayKernel(backendName, backend, [x, dy], [[...info.filterShape]], ([xs, dys], [into]) =>
      into.set(conv2dBackpropFilterValues(xs, dys, info)),
    );
    return out;
  };
  Object.defineProperty(kernelFunc, OURS, { value: true });
  return kernelFunc;
}

function isOurs(config: KernelConfig | undefined): boolean {
  return config !== undefined && (config.kernelFunc as unknown as Record<symbol, unknown>)[OURS] === true;
}

/**
 * Registers the typed-array Conv2DBackpropFilter for a backend, replacing the stock kernel (which is
 * kept: see `stockConv2DBackpropFilter`). Calling it again is a no-op.
 */
export function registerConv2DBackpropFilter(backendName: Conv2DBackpropFilterBackend): void {
  if (backendName !== 'cpu' && backendName !== 'wasm') {
    throw new TributaryError(
      'BACKEND_UNAVAILABLE',
      `The typed-array Conv2DBackpropFilter runs on "cpu" and "wasm" only, not "${backendName}".`,
    );
  }
  const existing = getKernel(Conv2DBackpropFilter, backendName);
  if (isOurs(existing)) return;
  if (existing) {
    stockKernels.set(backendName, existing);
    // Unregister first: registering over a kernel only warns, and we want no warning.
    unregisterKernel(Conv2DBackpropFilter, backendName);
  }
  registerKernel({ kernelName: Conv2DBackpropFilter, backendName, kernelFunc: makeKernelFunc(backendName) });
}

/** Whether the typed-array kernel is the one registered for `backendName`. */
export function isConv2DBackpropFilterRegistered(backendName: string): boolean {
  return isOurs(getKernel(Conv2DBackpropFilter, backendName));
}

/** The kernel that `registerConv2DBackpropFilter` replaced for this backend, if any (cpu has one; wasm none). */
export function stockConv2DBackpropFilter(backendName: string): KernelConfig | undefined {
  return stockKernels.get(backendName);
}

/** Puts the stock kernel back (or none, for wasm); for comparisons and benchmarks. */
export function restoreStockConv2DBackpropFilter(backendName: Conv2DBackpropFilterBackend): void {
  if (!isOurs(getKernel(Conv2DBackpropFilter, backendName))) return;
  unregisterKernel(Conv2DBackpropFilter, backendName);
  const stock = stockKernels.get(backendName);
  if (stock) registerKernel(stock);
}
