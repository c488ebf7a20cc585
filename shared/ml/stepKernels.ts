import { getKernel, type KernelFunc, registerKernel, type TensorInfo } from '@tensorflow/tfjs-core';
import { TributaryError } from '../errors';
import { runTypedArrayKernel, type TypedArrayBackend } from './typedArrayKernel';

/**
 * Typed-array kernels that each do in one pass what the layerwise training step did with several
 * small TF.js kernels, on the wasm (in place on its heap) and cpu backends.
 *
 * Why: a TF.js kernel call costs ~5 µs of JavaScript in the engine (lookup, tensor tracking, tidy,
 * disposal) whatever it computes, and the loss gradient at the logits was nine kernels on [32, 10]
 * tensors plus a tenth for the output bias; and wasm's Reverse takes ~0.1 ms for the 3,200-value conv2
 * filter. The values are the ones those kernels computed (each step rounded to float32, sums as float32
 * running sums: bit for bit what they give on wasm for the built-in models), and the tests hold every
 * kernel to the ops it replaces. (Fusing larger element-wise work this way does not pay: JavaScript loops
 * over a few thousand values cost what the SIMD kernels and their dispatch do.)
 *
 * - `CROSS_ENTROPY_GRAD` {probs [n, k] (a softmax's output), oneHot [n, k]}, attrs {scale} → [clipped =
 *   clip(Σ probs·oneHot, 1e-7, 1 − 1e-7) [n, 1], dLogits = (probs − oneHot)·scale where the clip passed the
 *   label's probability (0 where it clamped it), Σ over rows of dLogits [k]]: with scale = lr/n, the
 *   learning-rate-scaled gradient of the mean clipped cross-entropy at the logits of that softmax, and the
 *   output layer's bias step. (The softmax stays the backend's: a JavaScript exp rounds differently from
 *   XNNPACK's, and those last-bit differences grow over an epoch.)
 * - `ROTATED_FILTER` {filter [kh, kw, cIn, cOut]} → [kh, kw, cOut, cIn], turned 180° in space: the filter of
 *   the full convolution that gives a stride-1 convolution's input gradient.
 */

/** Name of the cross-entropy gradient kernel (see the module comment). */
export const CROSS_ENTROPY_GRAD = 'TributaryCrossEntropyGrad';
/** Name of the filter rotation kernel. */
export const ROTATED_FILTER = 'TributaryRotatedFilter';

/** Attributes of CROSS_ENTROPY_GRAD. */
export interface CrossEntropyGradAttrs {
  /** Multiplies the gradient (lr / batch size for an SGD step on the mean loss). */
  scale: number;
}

/** Probabilities are clipped to [EPSILON, 1 − EPSILON] before the log, as Keras does (see losses.ts). */
const EPSILON = 1e-7;

/** Backends these kernels run on: both keep tensor data in memory they can read and write directly. */
export type StepKernelBackend = TypedArrayBackend;

/** The clipped label probability and the scaled gradient at the logits, from softmax probabilities (module comment). */
export function crossEntropyGradValues(
  probs: ArrayLike<number>,
  oneHot: ArrayLike<number>,
  classes: number,
  scale: number,
  out: { clipped: Float32Array; dLogits: Float32Array; dLogitsSums: Float32Array },
): void {
  const rows = out.clipped.length;
  const lo = Math.fround(EPSILON);
  const hi = Math.fround(1 - EPSILON);
  const scale32 = Math.fround(scale);
  const sums = new Float32Array(classes);
  for (let r = 0; r < rows; r++) {
    const base = r * classes;
    let picked = 0;
    for (let j = 0; j < classes; j++) picked += probs[base + j] * oneHot[base + j];
    const picked32 = Math.fround(picked);
    // biome-ignore lint/complexity/useMathMinMax: as clipByValue on cpu and TensorFlow, a NaN stays NaN.
    const clipped = picked32 < lo ? lo : picked32 > hi ? hi : picked32;
    out.clipped[r] = clipped;
    // Where the clip clamps the label's probability the loss is flat; a NaN row gets NaN·0.
    const rowScale = clipped === picked32 ? scale32 : 0;
    for (let j = 0; j < classes; j++) {
      // Each step rounded to float32, as the Sub and Mul kernels it replaces; the bias sums a float32 running sum.
      const d = Math.fround(Math.fround(probs[base + j] - oneHot[base + j]) * rowScale);
      out.dLogits[base + j] = d;
      sums[j] += d;
    }
  }
  out.dLogitsSums.set(sums);
}

/** filter [kh, kw, cIn, cOut] turned 180° in space with its channel axes swapped: [kh, kw, cOut, cIn]. */
export function rotatedFilterValues(filter: ArrayLike<number>, shape: readonly number[], out: Float32Array): void {
  const [kh, kw, cIn, cOut] = shape;
  let o = 0;
  for (let h = 0; h < kh; h++) {
    for (let w = 0; w < kw; w++) {
      const from = ((kh - 1 - h) * kw + (kw - 1 - w)) * cIn * cOut;
      for (let co = 0; co < cOut; co++) {
        for (let ci = 0; ci < cIn; ci++, o++) out[o] = filter[from + ci * cOut + co];
      }
    }
  }
}

function shapeError(kernel: string, expected: string, got: readonly number[][]): TributaryError {
  return new TributaryError(
    'MODEL_SHAPE_MISMATCH',
    `${kernel} expects ${expected}; got shapes ${got.map((s) => `[${s}]`).join(', ')}.`,
  );
}

const sameShape = (a: readonly number[], b: readonly number[]) =>
  a.length === b.length && a.every((d, i) => d === b[i]);

function kernelFuncs(backendName: StepKernelBackend): Record<string, KernelFunc> {
  return {
    [CROSS_ENTROPY_GRAD]: ({ inputs, backend, attrs }) => {
      const { probs, oneHot } = inputs as { probs: TensorInfo; oneHot: TensorInfo };
      if (probs.shape.length !== 2 || !sameShape(probs.shape, oneHot.shape))
        throw shapeError(CROSS_ENTROPY_GRAD, 'probabilities and one-hot labels of one shape [n, k]', [
          probs.shape,
          oneHot.shape,
        ]);
      const [n, k] = probs.shape;
      const { scale } = attrs as unknown as CrossEntropyGradAttrs;
      return runTypedArrayKernel(backendName, backend, [probs, oneHot], [[n, 1], [n, k], [k]], ([p, h], outs) =>
        crossEntropyGradValues(p, h, k, scale, { clipped: outs[0], dLogits: outs[1], dLogitsSums: outs[2] }),
      );
    },
    [ROTATED_FILTER]: ({ inputs, backend }) => {
      const { filter } = inputs as { filter: TensorInfo };
      if (filter.shape.length !== 4) throw shapeError(ROTATED_FILTER, 'a rank-4 filter', [filter.shape]);
      const [kh, kw, cIn, cOut] = filter.shape;
      return runTypedArrayKernel(backendName, backend, [filter], [[kh, kw, cOut, cIn]], ([f], [out]) =>
        rotatedFilterValues(f, filter.shape, out),
      )[0];
    },
  };
}

/** Registers the step kernels for a backend (a no-op for those already registered). */
export function registerStepKernels(backendName: StepKernelBackend): void {
  if (backendName !== 'cpu' && backendName !== 'wasm') {
    throw new TributaryError(
      'BACKEND_UNAVAILABLE',
      `The typed-array training kernels run on "cpu" and "wasm" only, not "${backendName}".`,
    );
  }
  for (const [kernelName, kernelFunc] of Object.entries(kernelFuncs(backendName))) {
    if (!getKernel(kernelName, backendName)) registerKernel({ kernelName, backendName, kernelFunc });
  }
}

/** Whether the step kernels run on `backendName`. */
export function hasStepKernels(backendName: string): boolean {
  return [CROSS_ENTROPY_GRAD, ROTATED_FILTER].every((k) => getKernel(k, backendName) !== undefined);
}
