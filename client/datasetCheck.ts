import type { Dataset } from '../shared/data/dataset';
import { TributaryError } from '../shared/errors';
import type { InputSpec } from '../shared/schemas/jobSpec';

/** Checks an in-memory dataset against the job's input spec before any training (library users pass datasets directly). */
export function assertDatasetFitsInput(dataset: Dataset, input: InputSpec): void {
  if (dataset.count === 0) throw new TributaryError('DATA_FILE_EMPTY', 'The dataset has no examples.');
  const same =
    dataset.exampleShape.length === input.shape.length && dataset.exampleShape.every((d, i) => d === input.shape[i]);
  if (!same) {
    throw new TributaryError(
      'DATA_COLUMNS_MISMATCH',
      `Examples have shape [${dataset.exampleShape}]; the job expects [${input.shape}].`,
    );
  }
  for (let i = 0; i < dataset.count; i++) {
    const y = dataset.y[i];
    if (y < 0 || y >= input.numClasses) {
      throw new TributaryError(
        'DATA_LABEL_OUT_OF_RANGE',
        `Example ${i + 1} has label ${y}; expected an integer in [0, ${input.numClasses}).`,
      );
    }
  }
}
