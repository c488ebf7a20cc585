import * as tf from '@tensorflow/tfjs-core';
import { selectBackend } from './backend';
import { isConv2DBackpropFilterRegistered } from './conv2dBackpropFilter';

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

  it('auto falls back past the native bindings when they are not installed', async () => {
    let nativeInstalled = true;
    try {
      require.resolve('@tensorflow/tfjs-node');
    } catch {
      nativeInstalled = false;
    }
    const { name } = await selectBackend('auto');
    expect(name).toBe(nativeInstalled ? 'tensorflow' : 'wasm');
  });

  it('throws BACKEND_UNAVAILABLE naming a forced backend that cannot load, and its cause', async () => {
    let installed = true;
    try {
      require.resolve('@tensorflow/tfjs-node-gpu');
    } catch {
      installed = false;
    }
    if (installed) return;
    const err = await selectBackend('tensorflow-gpu').catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'BACKEND_UNAVAILABLE' });
    expect((err as Error).message).toMatch(
      /^The "tensorflow-gpu" backend cannot be loaded: Cannot find module '@tensorflow\/tfjs-node-gpu'/,
    );
    await expect(selectBackend('bogus' as never)).rejects.toMatchObject({ code: 'BACKEND_UNAVAILABLE' });
    // A failed forced load leaves the previous backend running.
    expect(tf.getBackend()).toBe('wasm');
  });
});
