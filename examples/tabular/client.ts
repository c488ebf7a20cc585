/** One tabular data provider process: `node -r tsx/cjs examples/tabular/client.ts --coordinator URL --job ID --index i ...`. */
import { runExampleClient } from '../runExampleClient';
import { tabularTask } from './task';

runExampleClient(tabularTask);
