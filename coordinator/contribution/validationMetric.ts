import type { NamedTensor } from '../../shared/codec/tensors';
import type { Dataset } from '../../shared/data/dataset';
import { evaluateModel } from '../../shared/ml/evaluate';
import { buildModel } from '../../shared/ml/modelZoo';
import { setNamedWeights } from '../../shared/ml/weights';
import type { ValidationSets } from '../evaluation/validationSets';
import type { JobRecord } from '../store/store';
import type { ModelMetric } from './coalitionUtility';

type TfModel = Awaited<ReturnType<typeof buildModel>>;

/**
 * Evaluates candidate global models on a job's validation set for contribution scoring. Keeps its own
 * model instance per job (the round runner's evaluator swaps weights into another one concurrently,
 * and evaluation yields between batches).
 */
export class ValidationMetrics {
  private readonly jobs = new Map<string, { model: TfModel; dataset: Dataset }>();

  constructor(private readonly validationSets: ValidationSets) {}

  /** The job's metric (accuracy, or -loss), higher is better; null when the job has no validation set. */
  async metricFor(job: JobRecord, metric: 'accuracy' | 'loss'): Promise<ModelMetric | null> {
    const dataset = await this.validationSets.get(job.id);
    if (!dataset) return null;
    let entry = this.jobs.get(job.id);
    // A replaced validation set (PUT again) is picked up at the next round: the shared cache decodes it anew.
    if (!entry) {
      entry = { model: await buildModel(job.spec.model, job.spec.input, job.spec.seed), dataset };
      this.jobs.set(job.id, entry);
    }
    entry.dataset = dataset;
    const { model } = entry;
    return async (weights: readonly NamedTensor[]) => {
      setNamedWeights(model, weights as NamedTensor[]);
      const result = await evaluateModel(model, dataset, 1024);
      return metric === 'accuracy' ? result.accuracy : -result.loss;
    };
  }

  release(jobId: string): void {
    this.jobs.get(jobId)?.model.dispose();
    this.jobs.delete(jobId);
  }

  dispose(): void {
    for (const id of [...this.jobs.keys()]) this.release(id);
  }
}
