/**
 * Training throughput of the built-in models on each backend that loads here, on real MNIST digits.
 * Run: npx tsx shared/ml/train.bench.ts [examples=2000] [batchSize=32]
 */
import { loadMnist } from '../data/mnist';
import type { ModelSpec } from '../schemas/jobSpec';
import { type BackendPreference, selectBackend } from './backend';
import { buildModel } from './modelZoo';
import { trainLocal } from './train';

async function main(): Promise<void> {
  const examples = Number(process.argv[2] ?? 2000);
  const batchSize = Number(process.argv[3] ?? 32);
  const data = loadMnist({ count: examples });
  const input = { shape: [28, 28, 1], labelColumn: 'label', numClasses: 10 };
  const specs: ModelSpec[] = [
    { kind: 'builtin', name: 'mnist-cnn' },
    { kind: 'builtin', name: 'mlp' },
  ];
  for (const preference of ['tensorflow', 'wasm', 'cpu'] as BackendPreference[]) {
    let name: string;
    try {
      ({ name } = await selectBackend(preference));
    } catch (err) {
      console.log(`${preference}: unavailable (${(err as Error).message})`);
      continue;
    }
    for (const spec of specs) {
      const model = await buildModel(spec, input, 0);
      // The first epoch warms up JIT and kernels; the second is measured.
      await trainLocal(model, data, { localEpochs: 1, batchSize, learningRate: 0.05, proximalMu: 0, seed: 0 });
      const r = await trainLocal(model, data, {
        localEpochs: 1,
        batchSize,
        learningRate: 0.05,
        proximalMu: 0,
        seed: 1,
      });
      model.dispose();
      console.log(
        `${name} ${spec.kind === 'builtin' ? spec.name : 'layers-json'} batch ${batchSize}: ${r.samplesPerSecond.toFixed(0)} samples/s`,
      );
    }
  }
}

void main();
