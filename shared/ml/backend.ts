import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { TributaryError } from '../errors';
import { registerConv2DBackpropFilter } from './conv2dBackpropFilter';
import { registerMaxPoolGrad } from './maxPoolGrad';
import { registerStepKernels } from './stepKernels';

/** Which TF.js backend to run on; 'auto' takes the fastest that loads. */
export type BackendPreference = 'auto' | 'tensorflow-gpu' | 'tensorflow' | 'wasm' | 'cpu';

/** Every accepted preference, for CLI choices and schemas. */
export const BACKEND_PREFERENCES: readonly BackendPreference[] = [
  'auto',
  'tensorflow-gpu',
  'tensorflow',
  'wasm',
  'cpu',
];

/** The backend now running and the tfjs-core instance it runs in. */
export interface SelectedBackend {
  /** What tf.getBackend() reports: 'tensorflow', 'wasm' or 'cpu'. */
  name: string;
  tf: typeof tf;
}

type ConcreteBackend = Exclude<BackendPreference, 'auto'>;

/** 'auto' tries these in order: native GPU, native CPU, WebAssembly, plain JavaScript. */
const AUTO_ORDER: readonly ConcreteBackend[] = ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'];

function describe(err: unknown): string {
  // Not `instanceof Error`: errors from another realm (a vm context, jest) fail that test.
  const message =
    typeof err === 'object' && err !== null && typeof (err as Error).message === 'string'
      ? (err as Error).message
      : String(err);
  return message.split('\n')[0].replace(/\.$/, '');
}

async function activate(tfName: string): Promise<void> {
  if (tf.getBackend() === tfName) return;
  if (!tf.findBackendFactory(tfName)) throw new Error(`no backend named "${tfName}" is registered with this tfjs-core`);
  // setBackend reports a failed initialisation by returning false (TF.js logs the cause itself).
  if (!(await tf.setBackend(tfName))) throw new Error(`tf.setBackend('${tfName}') failed to initialise the backend`);
}

/** The npm packages of the native TensorFlow backend (CPU and CUDA builds). */
export type NativePackage = '@tensorflow/tfjs-node' | '@tensorflow/tfjs-node-gpu';

/**
 * Environment variable naming a directory prepared by `scripts/native-tf.sh` (its own package.json and
 * node_modules). When set, the native packages are loaded from there and only from there; when unset,
 * from the project's dependencies as usual.
 */
export const TFJS_NODE_DIR_ENV = 'TRIBUTARY_TFJS_NODE_DIR';

/**
 * What `require` should load for a native package: its folder under `$TRIBUTARY_TFJS_NODE_DIR/node_modules`
 * when that variable is set, else the bare package name. Throws, naming the directory and the script
 * that builds it, when the variable is set and the package is not there.
 */
export function nativePackagePath(pkg: NativePackage, env: NodeJS.ProcessEnv = process.env): string {
  const dir = env[TFJS_NODE_DIR_ENV];
  if (dir === undefined || dir === '') return pkg;
  const packageDir = join(resolve(dir), 'node_modules', pkg);
  if (!existsSync(join(packageDir, 'package.json'))) {
    const gpu = pkg === '@tensorflow/tfjs-node-gpu' ? ' --gpu' : '';
    throw new Error(
      `${TFJS_NODE_DIR_ENV}=${dir} holds no ${pkg} (build it there with scripts/native-tf.sh${gpu} ${dir})`,
    );
  }
  return packageDir;
}

/** Loads the native binding; it registers the 'tensorflow' backend with the shared tfjs-core engine. */
async function loadNative(pkg: NativePackage): Promise<void> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  require(nativePackagePath(pkg));
  await activate('tensorflow');
}

let wasmConfigured = false;

async function loadWasm(): Promise<void> {
  if (!wasmConfigured && !tf.findBackend('wasm')) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const wasm = require('@tensorflow/tfjs-backend-wasm') as typeof import('@tensorflow/tfjs-backend-wasm');
    // Threads need Web Workers from a blob: URL, which Node cannot start (ERR_WORKER_PATH); one thread
    // also keeps results independent of the core count.
    tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
    wasm.setThreadsCount(1);
    // The .wasm binaries sit beside the package's main script; say so explicitly so that bundling or
    // a changed working directory cannot break the lookup.
    wasm.setWasmPaths(`${dirname(require.resolve('@tensorflow/tfjs-backend-wasm'))}/`);
    wasmConfigured = true;
  }
  await activate('wasm');
  registerConv2DBackpropFilter('wasm');
  registerMaxPoolGrad('wasm');
  registerStepKernels('wasm');
}

async function loadCpu(): Promise<void> {
  await activate('cpu');
  // The cpu backend advises installing tfjs-node on first use; selectBackend has already tried it.
  const cpu = tf.findBackend('cpu') as unknown as { firstUse?: boolean } | null;
  if (cpu && 'firstUse' in cpu) cpu.firstUse = false;
  registerConv2DBackpropFilter('cpu');
  registerMaxPoolGrad('cpu');
  registerStepKernels('cpu');
}

async function load(backend: ConcreteBackend): Promise<void> {
  switch (backend) {
    case 'tensorflow-gpu':
      return loadNative('@tensorflow/tfjs-node-gpu');
    case 'tensorflow':
      return loadNative('@tensorflow/tfjs-node');
    case 'wasm':
      return loadWasm();
    case 'cpu':
      return loadCpu();
  }
}

/**
 * Activates a TF.js backend: 'auto' tries `@tensorflow/tfjs-node-gpu`, `@tensorflow/tfjs-node`
 * (from `$TRIBUTARY_TFJS_NODE_DIR` when set, see `nativePackagePath`),
 * wasm (single-threaded) and cpu in that order; a named one must load or BACKEND_UNAVAILABLE is
 * thrown with the cause. On wasm and cpu the typed-array Conv2DBackpropFilter and MaxPoolGrad kernels
 * are registered, so CNNs train there, and fast. Safe to call repeatedly.
 */
export async function selectBackend(preference: BackendPreference = 'auto'): Promise<SelectedBackend> {
  if (preference !== 'auto' && !AUTO_ORDER.includes(preference)) {
    throw new TributaryError(
      'BACKEND_UNAVAILABLE',
      `Unknown backend "${String(preference)}": expected one of ${BACKEND_PREFERENCES.join(', ')}.`,
    );
  }
  const candidates = preference === 'auto' ? AUTO_ORDER : [preference];
  const failures: string[] = [];
  for (const candidate of candidates) {
    try {
      await load(candidate);
      return { name: tf.getBackend(), tf };
    } catch (err) {
      if (preference !== 'auto') {
        throw new TributaryError(
          'BACKEND_UNAVAILABLE',
          `The "${candidate}" backend cannot be loaded: ${describe(err)}.`,
          { cause: err },
        );
      }
      failures.push(`${candidate}: ${describe(err)}`);
    }
  }
  throw new TributaryError('BACKEND_UNAVAILABLE', `No TF.js backend could be loaded (${failures.join('; ')}).`);
}
