import type { Dataset } from '../shared/data/dataset';
import type { InputSpec, JobSpecInput } from '../shared/schemas/jobSpec';
import type { Partition } from './partitionOption';

/** Options every example accepts (the demo's flags). */
export interface ExampleOptions {
  clients: number;
  rounds: number;
  partition: Partition;
  seed: number;
}

/**
 * What an example provides: its task (model + data) and its coordinator setup. Client processes
 * start from `client.ts` in the example's folder.
 */
export interface ExampleTask {
  name: string;
  title: string;
  defaults: { clients: number; rounds: number };
  /**
   * Under `--dp-epsilon`: the clipping norm adaptive clipping starts from, about the median L2 norm of
   * one client's round-1 update (measured with the demo's defaults), so C tracks the norms from round 1.
   */
  privacyClippingNorm: number;
  input: InputSpec;
  /** The job the buyer creates (coordinator setup). */
  jobSpec(options: ExampleOptions): JobSpecInput;
  /** The buyer's validation set, evaluated by the coordinator after every round. */
  validationSet(seed: number): Dataset;
  /** The buyer's held-out test set, evaluated once on the final model. */
  testSet(seed: number): Dataset;
  /** Client `index`'s private training data. */
  clientData(options: ExampleOptions, index: number): Dataset;
  /** The example's client entry point, relative to the repository root. */
  clientEntry: string;
}
