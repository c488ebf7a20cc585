import { loadMnist } from '../data/mnist';
import type { InputSpec } from '../schemas/jobSpec';
import { selectBackend } from './backend';
import { evaluateModel } from './evaluate';
import { buildModel } from './modelZoo';
import { trainLocal } from './train';

const input: InputSpec = { shape: [28, 28, 1], labelColumn: 'label', numClasses: 10 };

describe('mnist-cnn on real MNIST digits', () => {
  it('reaches > 80% on 1,000 held-out digits after one epoch on 2,000', async () => {
    const { name } = await selectBackend('auto');
    const train = loadMnist({ count: 2000 });
    const test = loadMnist({ offset: 2000, count: 1000 });
    const model = await buildModel({ kind: 'builtin', name: 'mnist-cnn' }, input, 0);
    const result = await trainLocal(model, train, {
      localEpochs: 1,
      batchSize: 16,
      learningRate: 0.1,
      proximalMu: 0,
      seed: 0,
    });
    const evaluation = await evaluateModel(model, test);
    model.dispose();
    // Visible in the test output: the backend and speed this machine got.
    process.stdout.write(
      `mnist-cnn on ${name}: ${result.samplesPerSecond.toFixed(0)} samples/s, train loss ${result.loss.toFixed(3)}, test accuracy ${(100 * evaluation.accuracy).toFixed(1)}%\n`,
    );
    expect(evaluation.numExamples).toBe(1000);
    expect(evaluation.accuracy).toBeGreaterThan(0.8);
  });
});
