import type { Dataset } from '../../shared/data/dataset';
import type { Store } from '../store/store';
import { decodeDataset } from './tensorflowModels';

/**
 * The one per-job cache of decoded validation sets, shared by the round evaluator and contribution
 * scoring. A replaced set (PUT again) is picked up at the next read: the stored bytes are compared in
 * place with the cached ones, no copies.
 */
export class ValidationSets {
  private readonly cache = new Map<string, { bytes: Uint8Array; dataset: Dataset }>();

  constructor(private readonly store: Store) {}

  /** The job's validation set, or null when it has none. */
  async get(jobId: string): Promise<Dataset | null> {
    const bytes = await this.store.loadValidationSet(jobId);
    if (!bytes) {
      this.cache.delete(jobId);
      return null;
    }
    const cached = this.cache.get(jobId);
    if (cached && Buffer.compare(cached.bytes, bytes) === 0) return cached.dataset;
    const dataset = decodeDataset(bytes);
    this.cache.set(jobId, { bytes, dataset });
    return dataset;
  }

  /** Drops a job's set (it was replaced, or the job ended). */
  forget(jobId: string): void {
    this.cache.delete(jobId);
  }
}
