import { decodeTensors, encodeTensors } from '../../shared/codec/modelCodec';
import type { NamedTensor } from '../../shared/codec/tensors';
import type { Dataset } from '../../shared/data/dataset';
import { parseDatasetText } from '../../shared/data/loadDataset';
import { TributaryError } from '../../shared/errors';
import { selectBackend, type BackendPreference } from '../../shared/ml/backend';
import { evaluateModel } from '../../shared/ml/evaluate';
import { buildModel } from '../../shared/ml/modelZoo';
import { getNamedWeights, setNamedWeights } from '../../shared/ml/weights';
import type { JobSpec } from '../../shared/schemas/jobSpec';
import type { ModelFactory } from '../jobs/jobManager';
import type { GlobalModelEvaluator } from '../ports';
import type { JobRecord, Store } from '../store/store';
import { ValidationSets } from './validationSets';

type TfModel = Awaited<ReturnType<typeof buildModel>>;

/**
 * The coordinator's TF.js side: builds initial models, evaluates each new global model on the
 * buyer's validation set, and serves the model topology for downloads. One model instance per job
 * is kept and reused (weights are swapped in), since building one costs more than evaluating.
 */
export class TensorflowModels implements ModelFactory, GlobalModelEvaluator {
  private readonly models = new Map<string, TfModel>();

  private constructor(
    readonly backend: string,
    /** The coordinator's validation-set cache (shared with contribution scoring). */
    readonly validationSets: ValidationSets,
  ) {}

  static async create(preference: BackendPreference, store: Store): Promise<TensorflowModels> {
    const { name } = await selectBackend(preference);
    return new TensorflowModels(name, new ValidationSets(store));
  }

  async initialWeights(spec: JobSpec): Promise<NamedTensor[]> {
    const model = await buildModel(spec.model, spec.input, spec.seed);
    try {
      return getNamedWeights(model);
    } finally {
      model.dispose();
    }
  }

  async topology(spec: JobSpec): Promise<unknown> {
    const model = await buildModel(spec.model, spec.input, spec.seed);
    try {
      return model.toJSON(null, false);
    } finally {
      model.dispose();
    }
  }

  async evaluate(job: JobRecord, weights: readonly NamedTensor[]): Promise<Record<string, number> | null> {
    const dataset = await this.validationSets.get(job.id);
    if (!dataset) return null;
    let model = this.models.get(job.id);
    if (!model) {
      model = await buildModel(job.spec.model, job.spec.input, job.spec.seed);
      this.models.set(job.id, model);
    }
    setNamedWeights(model, weights as NamedTensor[]);
    const result = await evaluateModel(model, dataset);
    return { loss: result.loss, accuracy: result.accuracy, examples: result.numExamples };
  }

  /** Parses an uploaded CSV / JSON-lines validation set against the job's input spec into dataset codec bytes. */
  parseValidationSet(job: JobRecord, text: string, format: 'csv' | 'jsonl'): Uint8Array {
    let dataset: Dataset;
    try {
      dataset = parseDatasetText(text, format, job.spec.input);
    } catch (err) {
      if (err instanceof TributaryError) {
        throw new TributaryError('VALIDATION_SET_INVALID', `Validation set: ${err.message}`, {
          details: { cause: err.code },
          cause: err,
        });
      }
      throw err;
    }
    this.validationSets.forget(job.id);
    return encodeDataset(dataset);
  }

  /** Frees a job's evaluation model and cached validation set (the job ended). */
  release(jobId: string): void {
    this.models.get(jobId)?.dispose();
    this.models.delete(jobId);
    this.validationSets.forget(jobId);
  }

  dispose(): void {
    for (const m of this.models.values()) m.dispose();
    this.models.clear();
  }
}

/** A dataset as codec tensors: "x" [count, ...exampleShape] and "y" [count] (labels as floats). */
export function encodeDataset(dataset: Dataset): Uint8Array {
  return encodeTensors([
    { name: 'x', shape: [dataset.count, ...dataset.exampleShape], data: dataset.x },
    { name: 'y', shape: [dataset.count], data: Float32Array.from(dataset.y) },
  ]);
}

export function decodeDataset(bytes: Uint8Array): Dataset {
  const [x, y] = decodeTensors(bytes);
  if (!x || !y || x.name !== 'x' || y.name !== 'y' || x.shape[0] !== y.shape[0]) {
    throw new TributaryError('VALIDATION_SET_INVALID', 'The stored validation set is not an {x, y} dataset.');
  }
  return { x: x.data, y: Int32Array.from(y.data), count: y.shape[0], exampleShape: x.shape.slice(1) };
}
