/**
 * Central differential privacy with `paillier`, end to end over the real sockets: an in-process
 * coordinator on 127.0.0.1, four in-process TributaryClients on a small MLP and an in-process
 * KeyHolder (1024-bit keys for speed). The clients clip their deltas to C and encrypt them; the key
 * holder decrypts only the sum; the coordinator adds the Gaussian noise once. The committed step
 * differs from the noiseless sum of the clipped deltas by noise of the planned standard deviation
 * (z_Delta C: not 0, which would mean no noise, and not sqrt(2) of it, which would mean twice), and
 * no client's training metric reaches the round record.
 */
import { KeyHolder, generateKeyHolderKeys, keyHolderSpecFields, type KeyHolderKeys } from '../client/keyHolder';
import { TributaryClient } from '../client/tributaryClient';
import type { RoundRecord } from '../coordinator/store/store';
import { startCoordinator, type Coordinator } from '../coordinator/server';
import { privacyPlanOf } from '../shared/aggregation/privateUpdate';
import { flattenByManifest } from '../shared/codec/manifestVector';
import type { NamedTensor } from '../shared/codec/tensors';
import { generateIdentity } from '../shared/identity/keyPair';
import { clipToNorm } from '../shared/privacy/clipping';
import type { JobSpecInput } from '../shared/schemas/jobSpec';
import type { RoundTask } from '../shared/schemas/messages';
import { createJob } from './support/rest';
import { roundModel } from './support/secureRounds';
import { separableDataset } from './support/syntheticCsv';

jest.setTimeout(300_000);

const FEATURES = 8;
const CLIENTS = 4;
const CLIP = 0.5;

/** A client that records the delta it hands its mode (the test's view of the noiseless input). */
class RecordingClient extends TributaryClient {
  readonly sent = new Map<number, NamedTensor[]>();
  protected override deltaToSend(_g: readonly NamedTensor[], trained: NamedTensor[], task: RoundTask): NamedTensor[] {
    this.sent.set(task.round, trained);
    return trained;
  }
}

const stddev = (xs: number[]) => {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  return Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (xs.length - 1));
};

describe('central noise with paillier, end to end', () => {
  let coordinator: Coordinator | undefined;
  let keys: KeyHolderKeys;
  const clients: TributaryClient[] = [];
  let holder: KeyHolder | undefined;

  beforeAll(async () => {
    keys = await generateKeyHolderKeys(1024);
    coordinator = await startCoordinator({ port: 0, logLevel: 'error' });
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    holder?.close();
    await coordinator?.close();
  });

  it('the key holder decrypts the sum of clipped deltas and the coordinator noises it once', async () => {
    const c = coordinator!;
    const spec: JobSpecInput = {
      name: 'dp-paillier-e2e',
      model: { kind: 'builtin', name: 'mlp', hiddenUnits: [16] },
      input: { shape: [FEATURES], numClasses: 2 },
      rounds: 1,
      minClients: CLIENTS,
      maxClients: CLIENTS,
      localEpochs: 1,
      batchSize: 16,
      learningRate: 0.1,
      roundDeadlineMs: 120_000,
      quorumTimeoutMs: 120_000,
      maxRoundRetries: 1,
      seed: 3,
      secureAggregation: 'paillier',
      paillier: { ...keyHolderSpecFields(keys), decryptTimeoutMs: 60_000 },
      privacy: { epsilon: 8, delta: 1e-3, clippingNorm: CLIP },
    };
    const jobId = await createJob(c.url, spec);
    holder = new KeyHolder({ url: c.url, jobId, keys });
    const joined = new Promise((resolve) => holder!.once('joined', resolve));
    holder.run().catch(() => undefined);
    await joined;
    const warnings: string[] = [];
    const runs = Array.from({ length: CLIENTS }, (_, i) => {
      const client = new RecordingClient({
        url: c.url,
        jobId,
        identity: generateIdentity(),
        dataset: separableDataset(120 + 20 * i, FEATURES, 40 + i),
        backend: 'cpu',
      });
      client.on('warning', (w) => warnings.push(w));
      clients.push(client);
      return client.run();
    });
    for (const done of runs) expect(await done).toMatchObject({ status: 'completed' });
    expect(warnings).toEqual([]);

    const job = await c.jobs.getJob(jobId);
    const manifest = job.weightManifest;
    const before = flattenByManifest(await roundModel(c.store, jobId, 0), manifest);
    const after = flattenByManifest(await roundModel(c.store, jobId, 1), manifest);
    // FedAvg over the n clipped deltas: w1 = w0 + noised sum / n.
    const noisedSum = Array.from(after, (x, j) => (x - before[j]) * CLIENTS);
    const noiseless = new Float64Array(before.length);
    for (const client of clients as RecordingClient[]) {
      const delta = flattenByManifest(client.sent.get(1)!, manifest);
      clipToNorm(delta, CLIP).update.forEach((x, j) => (noiseless[j] += x));
    }
    const noise = noisedSum.map((x, j) => x - noiseless[j]);
    const plan = privacyPlanOf(job.spec, noise.length)!;
    const expected = plan.updateNoiseMultiplier * CLIP;
    // 178 coordinates: the sample sd is within 5 % at one sigma; once is 1.0, twice would be 1.41, none ~0.
    const sd = stddev(noise);
    expect(sd).toBeGreaterThan(0.75 * expected);
    expect(sd).toBeLessThan(1.25 * expected);
    const rounds = (await c.store.listRounds(jobId)) as RoundRecord[];
    expect(rounds.map((r) => r.status)).toEqual(['completed']);
    expect(rounds[0].privacy).toMatchObject({ noise: 'central', samplingRate: 1, clippingNorm: CLIP, rounds: 1 });
    expect(Object.keys(rounds[0].metrics).filter((k) => k.startsWith('train_'))).toEqual([]);
    expect(rounds[0].metrics.numExamples).toBe(CLIENTS);
  });
});
