import { decodeTensors } from '../../shared/codec/modelCodec';
import type { Dataset } from '../../shared/data/dataset';
import { evaluateModel } from '../../shared/ml/evaluate';
import { buildModel } from '../../shared/ml/modelZoo';
import { setNamedWeights } from '../../shared/ml/weights';
import type { JobSpec } from '../../shared/schemas/jobSpec';
import type { ModelScore } from './tolerance';

/**
 * Evaluates a job's checkpoints on the buyer's own validation set: one model instance built from the
 * spec, each checkpoint's weights swapped in. Batches of 1024, as contribution scoring evaluates.
 */
export class CheckpointEvaluator {
  private constructor(
    private readonly model: Awaited<ReturnType<typeof buildModel>>,
    private readonly dataset: Dataset,
  ) {}

  static async create(spec: JobSpec, dataset: Dataset): Promise<CheckpointEvaluator> {
    return new CheckpointEvaluator(await buildModel(spec.model, spec.input, spec.seed), dataset);
  }

  /** Accuracy and loss of a checkpoint's weights; throws a coded error when the bytes are not this model's weights. */
  async evaluate(checkpoint: Uint8Array): Promise<ModelScore> {
    setNamedWeights(this.model, decodeTensors(checkpoint));
    const result = await evaluateModel(this.model, this.dataset, 1024);
    return { accuracy: result.accuracy, loss: result.loss };
  }

  dispose(): void {
    this.model.dispose();
  }
}
