import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { type NativePackage, nativePackagePath, selectBackend, TFJS_NODE_DIR_ENV } from './backend';
import { isConv2DBackpropFilterRegistered } from './conv2dBackpropFilter';

/** Whether `require` would find the native package where selectBackend looks for it now. */
function nativeAvailable(pkg: NativePackage): boolean {
  try {
    require.resolve(nativePackagePath(pkg));
    return true;
  } catch {
    return false;
  }
}

describe('nativePackagePath', () => {
  it('is the bare package name without TRIBUTARY_TFJS_NODE_DIR, and the folder under its node_modules with it', () => {
    expect(nativePackagePath('@tensorflow/tfjs-node', {})).toBe('@tensorflow/tfjs-node');
    expect(nativePackagePath('@tensorflow/tfjs-node', { [TFJS_NODE_DIR_ENV]: '' })).toBe('@tensorflow/tfjs-node');
    const dir = mkdtempSync(join(tmpdir(), 'trib-native-'));
    const packageDir = join(dir, 'node_modules', '@tensorflow', 'tfjs-node');
    mkdirSync(packageDir, { recursive: true });
    writeFileSync(join(packageDir, 'package.json'), '{"name":"@tensorflow/tfjs-node","main":"index.js"}');
    expect(nativePackagePath('@tensorflow/tfjs-node', { [TFJS_NODE_DIR_ENV]: dir })).toBe(packageDir);
  });

  it('names the directory and the build command when the package is not there (no fallback to the project)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'trib-native-'));
    expect(() => nativePackagePath('@tensorflow/tfjs-node-gpu', { [TFJS_NODE_DIR_ENV]: dir })).toThrow(
      `${TFJS_NODE_DIR_ENV}=${dir} holds no @tensorflow/tfjs-node-gpu (build it there with scripts/native-tf.sh --gpu ${dir})`,
    );
    expect(() => nativePackagePath('@tensorflow/tfjs-node', { [TFJS_NODE_DIR_ENV]: dir })).toThrow(
      `(build it there with scripts/native-tf.sh ${dir})`,
    );
  });
});

describe('selectBackend', () => {
  it('activates cpu and wasm on request, with the typed-array kernel registered', async () => {
    const cpu = await selectBackend('cpu');
    expect(cpu.name).toBe('cpu');
    expect(cpu.tf.getBackend()).toBe('cpu');
    expect(isConv2DBackpropFilterRegistered('cpu')).toBe(true);
    const wasm = await selectBackend('wasm');
    expect(wasm.name).toBe('wasm');
    expect(tf.getBackend()).toBe('wasm');
    expect(isConv2DBackpropFilterRegistered('wasm')).toBe(true);
  });

  it('is idempotent', async () => {
    const a = await selectBackend('wasm');
    const b = await selectBackend('wasm');
    expect(b.name).toBe(a.name);
    expect(b.tf).toBe(a.tf);
    expect(tf.sum(tf.tensor([1, 2, 3])).dataSync()[0]).toBe(6);
  });

  it('auto takes native TensorFlow when it loads and falls back past it to wasm when not', async () => {
    const native = nativeAvailable('@tensorflow/tfjs-node-gpu') || nativeAvailable('@tensorflow/tfjs-node');
    const { name } = await selectBackend('auto');
    expect(name).toBe(native ? 'tensorflow' : 'wasm');
  });

  it('throws BACKEND_UNAVAILABLE naming a forced backend that cannot load, and its cause', async () => {
    // The GPU package exists on no machine this suite runs on; if it ever does, this test must move.
    expect(nativeAvailable('@tensorflow/tfjs-node-gpu')).toBe(false);
    await selectBackend('wasm');
    const err = await selectBackend('tensorflow-gpu').catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'BACKEND_UNAVAILABLE' });
    const cause = process.env[TFJS_NODE_DIR_ENV]
      ? `${TFJS_NODE_DIR_ENV}=${process.env[TFJS_NODE_DIR_ENV]} holds no @tensorflow/tfjs-node-gpu`
      : "Cannot find module '@tensorflow/tfjs-node-gpu'";
    expect((err as Error).message.startsWith(`The "tensorflow-gpu" backend cannot be loaded: ${cause}`)).toBe(true);
    await expect(selectBackend('bogus' as never)).rejects.toMatchObject({ code: 'BACKEND_UNAVAILABLE' });
    // A failed forced load leaves the previous backend running.
    expect(tf.getBackend()).toBe('wasm');
  });
});
