import type { TensorInfo } from '@tensorflow/tfjs-core';
import { TributaryError } from '../errors';

/** Backends whose tensor data our typed-array kernels read and write directly (wasm: in its heap). */
export type TypedArrayBackend = 'cpu' | 'wasm';

interface CpuBackendLike {
  readSync(dataId: object): ArrayLike<number>;
  makeTensorInfo(shape: number[], dtype: 'float32', values: Float32Array): TensorInfo;
}
interface WasmBackendLike {
  makeOutput(shape: number[], dtype: 'float32'): TensorInfo;
  typedArrayFromHeap(info: TensorInfo): Float32Array;
}

/** A kernel's body over plain typed arrays: it must write every value of every output. */
export type TypedArrayBody = (inputs: ArrayLike<number>[], outputs: Float32Array[]) => void;

/**
 * Runs `body` over the inputs' values and fresh float32 outputs of `outputShapes`, on either backend,
 * and returns the outputs as the kernel's result. On wasm the outputs are allocated first and every
 * view is taken after (an allocation may grow the heap and detach earlier views); the body writes
 * straight into the heap. On cpu the outputs are new arrays handed to the backend without a copy.
 */
export function runTypedArrayKernel(
  backendName: TypedArrayBackend,
  backend: unknown,
  inputs: TensorInfo[],
  outputShapes: number[][],
  body: TypedArrayBody,
): TensorInfo[] {
  for (const t of inputs) {
    if (t.dtype !== 'float32')
      throw new TributaryError('MODEL_SHAPE_MISMATCH', `A training kernel expects float32 inputs, got ${t.dtype}.`);
  }
  if (backendName === 'wasm') {
    const wasm = backend as WasmBackendLike;
    const outs = outputShapes.map((shape) => wasm.makeOutput(shape, 'float32'));
    body(
      inputs.map((t) => wasm.typedArrayFromHeap(t)),
      outs.map((t) => wasm.typedArrayFromHeap(t)),
    );
    return outs;
  }
  const cpu = backend as CpuBackendLike;
  const values = outputShapes.map((shape) => new Float32Array(shape.reduce((a, b) => a * b, 1)));
  body(
    inputs.map((t) => cpu.readSync(t.dataId)),
    values,
  );
  return outputShapes.map((shape, i) => cpu.makeTensorInfo(shape, 'float32', values[i]));
}
