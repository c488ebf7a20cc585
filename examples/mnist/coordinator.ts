import type { InputSpec, JobSpecInput } from '../../shared/schemas/jobSpec';
import type { ExampleOptions } from '../exampleTask';

/** One example is a 28x28 grey image; ten classes. */
export const MNIST_INPUT: InputSpec = { shape: [28, 28, 1], numClasses: 10, labelColumn: 'label' };

/**
 * The buyer's job for MNIST: the built-in CNN, FedAvg over every client each round, two local
 * epochs of SGD. The learning rate 0.05 and batch 32 were tuned on this machine for the 10-round demo.
 */
export function mnistJobSpec(options: ExampleOptions): JobSpecInput {
  return {
    name: `mnist-${options.partition.kind}`,
    model: { kind: 'builtin', name: 'mnist-cnn' },
    input: MNIST_INPUT,
    rounds: options.rounds,
    minClients: options.clients,
    maxClients: options.clients,
    localEpochs: 2,
    batchSize: 32,
    learningRate: 0.05,
    strategy: { name: 'fedavg' },
    roundDeadlineMs: 300_000,
    quorumTimeoutMs: 120_000,
    seed: options.seed,
  };
}
