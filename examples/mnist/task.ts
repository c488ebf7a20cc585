import type { Dataset } from '../../shared/data/dataset';
import { loadMnist } from '../../shared/data/mnist';
import type { ExampleOptions, ExampleTask } from '../exampleTask';
import { clientPart } from '../partitionOption';
import { MNIST_INPUT, mnistJobSpec } from './coordinator';

/**
 * The MNIST task: the 10,000 real digits of the `mnist` package in one fixed seeded order (seed 0):
 * digits 0-499 are the buyer's validation set, 500-1,499 the held-out test set, and the remaining
 * 8,500 are split among the clients by the chosen partitioner (its own seed).
 */
const VALIDATION = { offset: 0, count: 500 };
const TEST = { offset: 500, count: 1000 };
const TRAIN = { offset: 1500 };

export const mnistTask: ExampleTask = {
  name: 'mnist',
  title: 'MNIST digits, CNN, FedAvg',
  defaults: { clients: 5, rounds: 10 },
  // Round-1 update norm of one of 5 clients (2 local epochs): 2.6.
  privacyClippingNorm: 2.5,
  input: MNIST_INPUT,
  jobSpec: mnistJobSpec,
  validationSet: () => loadMnist(VALIDATION),
  testSet: () => loadMnist(TEST),
  clientData(options: ExampleOptions, index: number): Dataset {
    return clientPart(loadMnist(TRAIN), options.partition, options.clients, index, options.seed);
  },
  clientEntry: 'examples/mnist/client.ts',
};
