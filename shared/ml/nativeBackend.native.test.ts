/**
 * The native TensorFlow backend (`tensorflow`, @tensorflow/tfjs-node) as scripts/native-tf.sh builds it:
 * loaded from $TRIBUTARY_TFJS_NODE_DIR, backed by the libtensorflow of the PyPI wheel, and computing
 * what TF.js's own JavaScript kernels compute. Runs only in the native suite (jest.native.config.js).
 */
import { readdirSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import { loadMnist } from '../data/mnist';
import type { InputSpec } from '../schemas/jobSpec';
import { type BackendPreference, selectBackend, TFJS_NODE_DIR_ENV } from './backend';
import { buildModel } from './modelZoo';
import { trainLocal } from './train';
import { getNamedWeights, setNamedWeights } from './weights';

const dir = process.env[TFJS_NODE_DIR_ENV];

/** The libtensorflow version the script unpacked: its folder is libtensorflow-<version>-<cpu|gpu>. */
function builtVersions(): string[] {
  return readdirSync(dir as string)
    .map((name) => /^libtensorflow-(\d+\.\d+\.\d+)-cpu$/.exec(name)?.[1])
    .filter((v): v is string => v !== undefined);
}

describe('the native TensorFlow backend from TRIBUTARY_TFJS_NODE_DIR', () => {
  it('is configured: the native suite runs only against a directory built by scripts/native-tf.sh', () => {
    expect(dir).toEqual(expect.any(String));
    expect(builtVersions()).toHaveLength(1);
  });

  it("loads as 'tensorflow', on the wheel's libtensorflow, and 'auto' prefers it", async () => {
    const selected = await selectBackend('tensorflow');
    expect(selected.name).toBe('tensorflow');
    const binding = (tf.backend() as unknown as { binding: { TF_Version: string } }).binding;
    expect(binding.TF_Version).toBe(builtVersions()[0]);
    await selectBackend('wasm');
    expect((await selectBackend('auto')).name).toBe('tensorflow');
  });

  it('a forced GPU backend fails with BACKEND_UNAVAILABLE naming the directory and the --gpu build', async () => {
    await expect(selectBackend('tensorflow-gpu')).rejects.toMatchObject({
      code: 'BACKEND_UNAVAILABLE',
      message: expect.stringContaining(
        `holds no @tensorflow/tfjs-node-gpu (build it there with scripts/native-tf.sh --gpu`,
      ),
    });
  });

  it('trains the MNIST CNN to the same weights as the wasm and cpu backends (native kernels vs JavaScript ones)', async () => {
    const input: InputSpec = { shape: [28, 28, 1], labelColumn: 'label', numClasses: 10 };
    const data = loadMnist({ count: 96 });
    const config = { localEpochs: 1, batchSize: 16, learningRate: 0.1, proximalMu: 0, seed: 5 };
    const trainOn = async (backend: BackendPreference) => {
      await selectBackend(backend);
      const model = await buildModel({ kind: 'builtin', name: 'mnist-cnn' }, input, 9);
      const initial = getNamedWeights(model);
      const result = await trainLocal(model, data, config);
      const weights = getNamedWeights(model);
      model.dispose();
      return { initial, result, weights };
    };
    const native = await trainOn('tensorflow');
    for (const backend of ['wasm', 'cpu'] as const) {
      const other = await trainOn(backend);
      // Same start (seeded initialisers), same data order, same updates.
      expect(other.initial).toEqual(native.initial);
      expect(other.result.loss).toBeCloseTo(native.result.loss, 4);
      let diff = 0;
      other.weights.forEach((t, i) =>
        t.data.forEach((v, j) => (diff = Math.max(diff, Math.abs(v - native.weights[i].data[j])))),
      );
      expect(diff).toBeLessThan(1e-4);
    }
    // And the trained weights load back into a native model unchanged.
    await selectBackend('tensorflow');
    const model = await buildModel({ kind: 'builtin', name: 'mnist-cnn' }, input, 0);
    setNamedWeights(model, native.weights);
    expect(getNamedWeights(model)).toEqual(native.weights);
    model.dispose();
  });
});
