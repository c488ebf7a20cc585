/**
 * A Paillier key holder that lies about the sum, played with the project's own KeyHolder whose
 * decrypted result is rewritten before it is sent (the only thing a key holder controls), over real
 * sockets with real clients (1024-bit keys for speed). An amplified sum (every value, weight included,
 * times 1000) is refused by the coordinator's honest-sum check in every attempt: the job fails, no
 * round is committed and the model stays the initial one. A forged sum within the bounds (the honest
 * weight, every delta pushed to +clipRange x weight) passes: the coordinator cannot tell it from an
 * honest one, and the step it commits is bounded by clipRange per coordinate (the documented limit).
 */
import { KeyHolder, generateKeyHolderKeys, keyHolderSpecFields, type KeyHolderKeys } from '../client/keyHolder';
import { CoordinatorConnection } from '../client/coordinatorConnection';
import { TributaryClient } from '../client/tributaryClient';
import { startCoordinator, type Coordinator } from '../coordinator/server';
import { flattenByManifest } from '../shared/codec/manifestVector';
import { generateIdentity } from '../shared/identity/keyPair';
import type { JobSpecInput } from '../shared/schemas/jobSpec';
import { createJob } from './support/rest';
import { roundModel } from './support/secureRounds';
import { separableDataset } from './support/syntheticCsv';

jest.setTimeout(300_000);

const FEATURES = 4;
const CLIENTS = 3;

describe('a lying paillier key holder', () => {
  let coordinator: Coordinator;
  let keys: KeyHolderKeys;
  const closers: Array<{ close(): void }> = [];
  const original = CoordinatorConnection.prototype.sendAggregateResult;
  /** What the lying key holder does to the decrypted sums before sending them. */
  let forge: (sums: Float32Array) => Float32Array = (s) => s;

  beforeAll(async () => {
    keys = await generateKeyHolderKeys(1024);
    coordinator = await startCoordinator({ port: 0, logLevel: 'silent' });
    CoordinatorConnection.prototype.sendAggregateResult = async function (request, sums, error, refusal) {
      return original.call(this, request, sums ? forge(sums) : sums, error, refusal);
    };
  });
  afterAll(async () => {
    CoordinatorConnection.prototype.sendAggregateResult = original;
    for (const c of closers) c.close();
    await coordinator?.close();
  });

  async function runJob(maxRoundRetries: number) {
    const spec: JobSpecInput = {
      name: 'lying-key-holder',
      model: { kind: 'builtin', name: 'mlp', hiddenUnits: [4] },
      input: { shape: [FEATURES], numClasses: 2 },
      rounds: 1,
      minClients: CLIENTS,
      maxClients: CLIENTS,
      batchSize: 16,
      learningRate: 0.1,
      roundDeadlineMs: 60_000,
      quorumTimeoutMs: 60_000,
      maxRoundRetries,
      secureAggregation: 'paillier',
      paillier: { ...keyHolderSpecFields(keys), maxExampleWeight: 100, decryptTimeoutMs: 30_000 },
    };
    const jobId = await createJob(coordinator.url, spec);
    const holder = new KeyHolder({ url: coordinator.url, jobId, keys });
    closers.push(holder);
    const joined = new Promise((resolve) => holder.once('joined', resolve));
    holder.run().catch(() => undefined);
    await joined;
    for (let i = 0; i < CLIENTS; i++) {
      const client = new TributaryClient({
        url: coordinator.url,
        jobId,
        identity: generateIdentity(),
        dataset: separableDataset(60 + 10 * i, FEATURES, 70 + i),
        backend: 'cpu',
        reconnectDelayMs: 50,
      });
      closers.push(client);
      client.run().catch(() => undefined);
    }
    const job = await coordinator.jobs.waitForJob(jobId);
    return { job, rounds: await coordinator.store.listRounds(jobId) };
  }

  it('an amplified sum is refused in every attempt: the job fails and nothing is committed', async () => {
    forge = (sums) => sums.map((x) => x * 1000);
    const { job, rounds } = await runJob(1);
    expect(job.status).toBe('failed');
    expect(job.currentRound).toBe(0);
    expect(rounds.filter((r) => r.status === 'completed')).toEqual([]);
    expect(rounds[0].failureReason).toMatch(/^ROUND_AGGREGATE_INVALID/);
    // Its members were blamed, so the retry could not reach quorum without them.
    expect(rounds.length).toBeGreaterThanOrEqual(1);
    expect(await coordinator.store.loadCheckpoint(job.id, 1)).toBeNull();
  });

  it('a forged sum within the bounds passes, and moves the model by at most clipRange per coordinate', async () => {
    // The honest summed weight (last value), every delta at the largest value the bounds allow.
    forge = (sums) => {
      const weight = sums[sums.length - 1];
      return sums.map((x, i) => (i === sums.length - 1 ? x : 1 * weight));
    };
    const { job, rounds } = await runJob(0);
    expect(job.status).toBe('completed');
    expect(rounds.map((r) => r.status)).toEqual(['completed']);
    const before = flattenByManifest(await roundModel(coordinator.store, job.id, 0), job.weightManifest);
    const after = flattenByManifest(await roundModel(coordinator.store, job.id, 1), job.weightManifest);
    const step = Array.from(after, (x, j) => x - before[j]);
    // Every coordinate stepped by the forged +1 (the mean of "updates" of +clipRange), and no further.
    for (const s of step) expect(s).toBeCloseTo(1, 3);
  });
});
