/**
 * Differential privacy end to end over the real sockets: an in-process coordinator on 127.0.0.1 and
 * in-process TributaryClients on a small MLP. A `secagg` round with distributed noise commits a model
 * whose step differs from the noiseless mean of the clipped updates by noise of the planned standard
 * deviation (each client added its share before masking; the coordinator only decoded the sum), a
 * central-noise `secagg` round gets the coordinator's noise once, and malformed or unmeetable privacy
 * blocks are refused at creation over REST with coded errors, storing nothing.
 */
import { TributaryClient } from '../client/tributaryClient';
import { startCoordinator, type Coordinator } from '../coordinator/server';
import { distributedNoisePlanOf, privacyPlanOf } from '../shared/aggregation/privateUpdate';
import { flattenByManifest } from '../shared/codec/manifestVector';
import type { NamedTensor, TensorManifestEntry } from '../shared/codec/tensors';
import { generateIdentity } from '../shared/identity/keyPair';
import { clipToNorm } from '../shared/privacy/clipping';
import type { JobSpecInput } from '../shared/schemas/jobSpec';
import type { RoundTask } from '../shared/schemas/messages';
import type { RoundRecord } from '../coordinator/store/store';
import { createJob } from './support/rest';
import { roundModel } from './support/secureRounds';
import { separableDataset } from './support/syntheticCsv';
import { createSignedFetch } from '../client/signedFetch';
import { testBuyer } from './support/rest';

/** REST writes are signed (here as the e2e tests' buyer). */
const signedFetch = createSignedFetch(testBuyer);

jest.setTimeout(120_000);

const FEATURES = 8;
const CLIENTS = 4;
const CLIP = 0.5;
/** The distributed test clips harder, so that the clipped signal stands well above its small noise. */
const TIGHT_CLIP = 0.2;

/** A client that records the delta it hands its mode in each round (the test's view of the noiseless input). */
class RecordingClient extends TributaryClient {
  readonly sent = new Map<number, NamedTensor[]>();
  protected override deltaToSend(_g: readonly NamedTensor[], trained: NamedTensor[], task: RoundTask): NamedTensor[] {
    this.sent.set(task.round, trained);
    return trained;
  }
}

function spec(privacy: NonNullable<JobSpecInput['privacy']>, overrides: Partial<JobSpecInput> = {}): JobSpecInput {
  return {
    name: 'dp-e2e',
    model: { kind: 'builtin', name: 'mlp', hiddenUnits: [16] },
    input: { shape: [FEATURES], numClasses: 2 },
    rounds: 1,
    minClients: CLIENTS,
    maxClients: CLIENTS,
    localEpochs: 1,
    batchSize: 16,
    learningRate: 0.1,
    roundDeadlineMs: 60_000,
    quorumTimeoutMs: 60_000,
    maxRoundRetries: 1,
    seed: 3,
    secureAggregation: 'secagg',
    secagg: { stageTimeoutMs: 30_000 },
    privacy,
    ...overrides,
  };
}

interface RestError {
  error: { code: string; message: string };
}

describe('differential privacy end to end', () => {
  let coordinator: Coordinator;
  const clients: TributaryClient[] = [];

  beforeAll(async () => {
    coordinator = await startCoordinator({ port: 0, logLevel: 'error' });
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await coordinator?.close();
  });

  async function runOneRound(jobSpec: JobSpecInput, clip: number) {
    const jobId = await createJob(coordinator.url, jobSpec);
    const started = Array.from({ length: CLIENTS }, (_, i) => {
      const client = new RecordingClient({
        url: coordinator.url,
        jobId,
        identity: generateIdentity(),
        dataset: separableDataset(120 + 20 * i, FEATURES, 40 + i),
        backend: 'cpu',
        allowPlaintext: true, // some of these jobs run in mode none
      });
      clients.push(client);
      const warnings: string[] = [];
      client.on('warning', (w) => warnings.push(w));
      return { client, done: client.run(), warnings };
    });
    for (const s of started) expect(await s.done).toMatchObject({ status: 'completed' });
    const job = await coordinator.jobs.getJob(jobId);
    expect(job.status).toBe('completed');
    const manifest: TensorManifestEntry[] = job.weightManifest;
    const before = flattenByManifest(await roundModel(coordinator.store, jobId, 0), manifest);
    const after = flattenByManifest(await roundModel(coordinator.store, jobId, 1), manifest);
    // The noised sum the strategy stepped with: FedAvg over uniform weights, w1 = w0 + sum / n.
    const noisedSum = Array.from(after, (x, j) => (x - before[j]) * CLIENTS);
    // What the sum would be without noise: every client's delta clipped to C, as the clients clip.
    const noiseless = new Float64Array(before.length);
    for (const { client } of started) {
      const delta = flattenByManifest((client as RecordingClient).sent.get(1)!, manifest);
      clipToNorm(delta, clip).update.forEach((x, j) => (noiseless[j] += x));
    }
    const noise = noisedSum.map((x, j) => x - noiseless[j]);
    const rounds = (await (await fetch(`${coordinator.url}/v1/jobs/${jobId}/rounds`)).json()) as {
      rounds: RoundRecord[];
    };
    return { job, noise, noiseless, record: rounds.rounds[0], warnings: started.flatMap((s) => s.warnings) };
  }

  const stddev = (xs: number[]) => {
    const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
    return Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (xs.length - 1));
  };

  it('distributed noise: the SecAgg+ sum carries the clients’ discrete Gaussian noise, of the planned size, and decodes', async () => {
    // Little noise (z = 0.1) against the signal, so a sum decoded wrongly (another rotation, scale or
    // wrap) would be off by far more than the noise: the check below then fails.
    const privacySpec = {
      epsilon: 100,
      delta: 1e-3,
      clippingNorm: TIGHT_CLIP,
      noiseMultiplier: 0.1,
      clippedCountNoise: 1,
      noise: 'distributed' as const,
    };
    const { job, noise, noiseless, record, warnings } = await runOneRound(spec(privacySpec), TIGHT_CLIP);
    expect(warnings).toEqual([]);
    const parameters = noise.length;
    const plan = privacyPlanOf(job.spec, parameters)!;
    const round = distributedNoisePlanOf(plan, parameters, TIGHT_CLIP);
    // Every one of the n_min = 4 clients added variance v in integer steps of 1/scale: the sum's noise has
    // sd sqrt(4 v) / scale per coordinate (the rotation is orthonormal), about z_Delta C.
    const expected = Math.sqrt(CLIENTS * round.perClientVariance) / round.scale;
    expect(expected / (plan.updateNoiseMultiplier * TIGHT_CLIP)).toBeGreaterThan(0.99);
    expect(expected / (plan.updateNoiseMultiplier * TIGHT_CLIP)).toBeLessThan(1.05);
    // It differs from the noiseless sum, by noise of that size (178 coordinates: the sample sd is within 5 % at 1 sigma, 25 % is 4.7 sigma)...
    const sd = stddev(noise);
    expect(sd).toBeGreaterThan(0.75 * expected);
    expect(sd).toBeLessThan(1.25 * expected);
    // ...centred on it, and nowhere beyond 6 sd: the decode neither wrapped around nor lost the scale.
    expect(Math.abs(noise.reduce((a, b) => a + b, 0) / noise.length)).toBeLessThan(
      (4 * expected) / Math.sqrt(noise.length),
    );
    expect(Math.max(...noise.map(Math.abs))).toBeLessThan(6 * expected);
    // The signal is well above the noise: a wrong decode would show, and the model did learn from the sum.
    expect(stddev(Array.from(noiseless))).toBeGreaterThan(2 * expected);
    expect(record.privacy).toMatchObject({
      noise: 'distributed',
      delta: 1e-3,
      epsilonBudget: 100,
      samplingRate: 1,
      clippingNorm: TIGHT_CLIP,
      rounds: 1,
      noiseMultiplier: plan.noiseMultiplier,
    });
    expect(record.privacy!.epsilon).toBeGreaterThan(0);
    expect(record.privacy!.epsilon).toBeLessThanOrEqual(100);
    expect(record.privacy!.clippedFraction).toBeGreaterThanOrEqual(0);
    expect(record.privacy!.clippedFraction).toBeLessThanOrEqual(1);
  });

  it.each([
    ['secagg', 'clients send clipped deltas with the bit in the weight slot, the coordinator noises the unmasked sum'],
    [
      'none',
      'clients upload clipped deltas with the bit as their only metric, the coordinator clips again and noises the sum',
    ],
  ] as const)('central noise under %s: %s, once', async (mode, _how) => {
    const privacySpec = { epsilon: 8, delta: 1e-3, clippingNorm: CLIP };
    const overrides: Partial<JobSpecInput> = mode === 'none' ? { secureAggregation: 'none', secagg: undefined } : {};
    const { job, noise, record, warnings } = await runOneRound(spec(privacySpec, overrides), CLIP);
    expect(warnings).toEqual([]);
    const plan = privacyPlanOf(job.spec, noise.length)!;
    const expected = plan.updateNoiseMultiplier * CLIP;
    const sd = stddev(noise);
    // Once: sd z_Delta C. Twice would be sqrt(2) of it; none would leave only quantisation error (~1e-5).
    expect(sd).toBeGreaterThan(0.75 * expected);
    expect(sd).toBeLessThan(1.25 * expected);
    expect(record.privacy).toMatchObject({ noise: 'central', samplingRate: 1, clippingNorm: CLIP, rounds: 1 });
    // No per-client training metric reaches the round record under DP, in any mode.
    expect(Object.keys(record.metrics).filter((k) => k.startsWith('train_'))).toEqual([]);
    expect(record.metrics.numExamples).toBe(CLIENTS);
  });

  it('refuses malformed or unmeetable privacy blocks at creation over REST, storing nothing', async () => {
    const post = async (body: unknown) => {
      const res = await signedFetch(`${coordinator.url}/v1/jobs`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      return { status: res.status, body: (await res.json()) as RestError };
    };
    const before = ((await (await fetch(`${coordinator.url}/v1/jobs`)).json()) as { jobs: unknown[] }).jobs.length;
    const cases: Array<[string, JobSpecInput, number, string, RegExp]> = [
      ['a negative norm', spec({ epsilon: 1, clippingNorm: -1 }), 400, 'JOB_SPEC_INVALID', /privacy\.clippingNorm/],
      ['a zero epsilon', spec({ epsilon: 0, clippingNorm: 1 }), 400, 'JOB_SPEC_INVALID', /privacy\.epsilon/],
      [
        'both clipping options',
        spec({ epsilon: 1, clippingNorm: 1, adaptiveClipping: {} }),
        400,
        'JOB_SPEC_INVALID',
        /exactly one of clippingNorm/,
      ],
      [
        'a budget one round already exceeds',
        spec({ epsilon: 0.05, clippingNorm: 1, noiseMultiplier: 0.5 }),
        400,
        'PRIVACY_BUDGET_UNREACHABLE',
        /one round at noiseMultiplier 0\.5/,
      ],
      [
        'delta at 1 / population',
        spec({ epsilon: 1, clippingNorm: 1, delta: 0.25 }),
        400,
        'JOB_SPEC_INVALID',
        /delta below 1 \/ population/,
      ],
      [
        'distributed noise on a mode without a secure sum',
        spec({ epsilon: 1, clippingNorm: 1, noise: 'distributed' }, { secureAggregation: 'none', secagg: undefined }),
        400,
        'JOB_SPEC_INVALID',
        /needs secureAggregation "secagg"|cannot add "distributed" noise/,
      ],
      [
        'a robust rule',
        spec(
          { epsilon: 1, clippingNorm: 1 },
          { secureAggregation: 'none', secagg: undefined, strategy: { name: 'fedavg', robust: { rule: 'median' } } },
        ),
        400,
        'JOB_SPEC_INVALID',
        /releases only the noised sum/,
      ],
    ];
    for (const [what, body, status, code, message] of cases) {
      const res = await post(body);
      expect({ what, status: res.status, code: res.body.error?.code }).toEqual({ what, status, code });
      expect(res.body.error.message).toMatch(message);
    }
    const after = ((await (await fetch(`${coordinator.url}/v1/jobs`)).json()) as { jobs: unknown[] }).jobs.length;
    expect(after).toBe(before);
  });
});
