import * as tf from '@tensorflow/tfjs-core';
import { selectBackend } from '../../shared/ml/backend';
import { buildModel } from '../../shared/ml/modelZoo';
import { getNamedWeights } from '../../shared/ml/weights';
import { JobSpecSchema } from '../../shared/schemas/jobSpec';
import { encodeDataset } from '../evaluation/tensorflowModels';
import type { RoundCompletedEvent } from '../ports';
import { MemoryStore } from '../store/memoryStore';
import type { JobRecord, RoundRecord } from '../store/store';
import { ContributionScorer } from './contributionScorer';

const spec = JobSpecSchema.parse({
  name: 'scorer',
  model: { kind: 'builtin', name: 'mlp', hiddenUnits: [4] },
  input: { shape: [3], numClasses: 2 },
  rounds: 2,
  secureAggregation: 'none',
});
const at = new Date(0);
const job: JobRecord = {
  id: 'job_scorer',
  spec,
  status: 'running',
  currentRound: 1,
  modelHash: '0'.repeat(64),
  weightManifest: [],
  createdAt: at,
  updatedAt: at,
};
const record: RoundRecord = {
  jobId: job.id,
  round: 1,
  attempt: 0,
  status: 'completed',
  selected: ['a'],
  participants: ['a'],
  failures: [],
  metrics: {},
  startedAt: at,
  finishedAt: at,
};
const event: RoundCompletedEvent = { job, round: record, weights: [], modelHash: '0'.repeat(64), previousWeights: [] };

/** A store holding the job, its round 1 and a two-example validation set; a scorer on it; the job's initial weights. */
async function withValidationSet() {
  await selectBackend('cpu');
  const model = await buildModel(spec.model, spec.input, spec.seed);
  const weights = getNamedWeights(model);
  model.dispose();
  const store = new MemoryStore();
  await store.createJob(job);
  await store.saveRound(record);
  const validation = {
    x: Float32Array.from([0, 1, 2, 3, 4, 5]),
    y: Int32Array.from([0, 1]),
    count: 2,
    exampleShape: [3],
  };
  await store.saveValidationSet(job.id, encodeDataset(validation));
  const errors: string[] = [];
  const scorer = new ContributionScorer({
    store,
    logger: { error: (m) => errors.push(m), info: () => undefined, debug: () => undefined },
  });
  return { store, scorer, errors, weights };
}

describe('ContributionScorer', () => {
  it('leaves rounds of a job without a validation set unscored, and stops asking for per-client updates', async () => {
    const store = new MemoryStore();
    await store.createJob(job);
    await store.saveRound(record);
    const errors: string[] = [];
    const scorer = new ContributionScorer({
      store,
      logger: { error: (m) => errors.push(m), info: () => undefined, debug: () => undefined },
    });
    expect(scorer.wantsClientUpdates(job.id)).toBe(true);
    await scorer.onRoundCompleted(event);
    await scorer.whenIdle(job.id);
    expect((await store.listRounds(job.id))[0]).toStrictEqual(record);
    expect(errors).toEqual([]);
    // No validation set: later plaintext rounds need not keep per-client updates.
    expect(scorer.wantsClientUpdates(job.id)).toBe(false);
    await scorer.close();
  });

  it('never rejects, and keeps the committed round as it was, when scoring fails', async () => {
    const store = new MemoryStore();
    await store.createJob(job);
    await store.saveRound(record);
    await store.saveValidationSet(job.id, Uint8Array.from([1, 2, 3])); // not a dataset: decoding throws
    const errors: string[] = [];
    const scorer = new ContributionScorer({
      store,
      logger: { error: (m) => errors.push(m), info: () => undefined, debug: () => undefined },
    });
    await expect(scorer.onRoundCompleted(event)).resolves.toBeUndefined();
    await scorer.whenIdle();
    expect(errors).toEqual(['contribution scoring failed']);
    expect((await store.listRounds(job.id))[0]).toStrictEqual(record);
    await scorer.close();
    // A closed scorer takes no more rounds.
    await scorer.onRoundCompleted(event);
    await scorer.whenIdle();
    expect(errors).toHaveLength(1);
  });

  it("frees the job's evaluation model when the job ends before its last round", async () => {
    const { store, scorer, errors, weights } = await withValidationSet();
    const before = tf.memory().numTensors;
    // Round 1 of 2: the scorer builds its evaluation model and keeps it for round 2.
    await scorer.onRoundCompleted({ ...event, weights, previousWeights: weights });
    await scorer.whenIdle(job.id);
    expect(errors).toEqual([]);
    expect((await store.listRounds(job.id))[0].contribution?.values).toEqual([{ members: ['a'], value: 0 }]);
    expect(tf.memory().numTensors).toBeGreaterThan(before);
    // The job fails before round 2: its model is freed all the same.
    scorer.onJobEnded(job.id);
    await scorer.whenIdle(job.id);
    expect(tf.memory().numTensors).toBe(before);
    await scorer.close();
  });

  it('leaves a round unscored rather than saving non-finite values (a model that overflowed)', async () => {
    const { store, scorer, errors, weights } = await withValidationSet();
    const overflowed = weights.map((t) => ({ ...t, data: new Float32Array(t.data.length).fill(Infinity) }));
    await scorer.onRoundCompleted({ ...event, weights: overflowed, previousWeights: weights });
    await scorer.whenIdle(job.id);
    expect(errors).toEqual(['contribution scoring failed']);
    expect((await store.listRounds(job.id))[0]).toStrictEqual(record);
    await scorer.close();
  });

  it('picks up a validation set replaced by one of the same size', async () => {
    const { store, scorer, errors, weights } = await withValidationSet();
    const baseline = async () => {
      await scorer.onRoundCompleted({ ...event, weights, previousWeights: weights });
      await scorer.whenIdle(job.id);
      return (await store.listRounds(job.id))[0].contribution!.baseline;
    };
    const first = await baseline();
    const relabelled = {
      x: Float32Array.from([0, 1, 2, 3, 4, 5]),
      y: Int32Array.from([1, 0]),
      count: 2,
      exampleShape: [3],
    };
    await store.saveValidationSet(job.id, encodeDataset(relabelled));
    expect(await baseline()).not.toBeCloseTo(first, 6);
    expect(errors).toEqual([]);
    await scorer.close();
  });
});
