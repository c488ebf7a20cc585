/** One MNIST data provider process: `node -r tsx/cjs examples/mnist/client.ts --coordinator URL --job ID --index i ...`. */
import { runExampleClient } from '../runExampleClient';
import { mnistTask } from './task';

runExampleClient(mnistTask);
