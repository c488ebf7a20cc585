/**
 * The mode seam, proven: a fourth aggregation mode defined entirely in this folder (float64Mode.ts)
 * is registered through the three registries (spec, coordinator, client) and runs a federation over
 * real sockets, giving the same round-1 model as the built-in plaintext mode on the same data and seed.
 */
import { registerClientMode } from '../../client/updates/registry';
import { TributaryClient } from '../../client/tributaryClient';
import { registerCoordinatorMode } from '../../coordinator/aggregation/registry';
import { startCoordinator, type Coordinator } from '../../coordinator/server';
import { decodeTensors } from '../../shared/codec/modelCodec';
import { generateIdentity } from '../../shared/identity/keyPair';
import { registerAggregationSpec, unregisterAggregationSpec } from '../../shared/schemas/aggregationSpec';
import type { JobSpecInput } from '../../shared/schemas/jobSpec';
import { createJob } from '../support/rest';
import { separableDataset } from '../support/syntheticCsv';
import { accepted, float64ClientMode, float64CoordinatorMode, float64Spec, MODE } from './float64Mode';

jest.setTimeout(180_000);

const DATASETS = [80, 120, 100].map((n, i) => separableDataset(n, 6, 40 + i));

const spec = (mode: 'none' | typeof MODE, overrides: Partial<JobSpecInput> = {}): JobSpecInput => ({
  name: `fourth-mode-${mode}`,
  model: { kind: 'builtin', name: 'mlp', hiddenUnits: [8] },
  input: { shape: [6], numClasses: 2 },
  rounds: 1,
  minClients: 3,
  maxClients: 3,
  batchSize: 16,
  learningRate: 0.1,
  roundDeadlineMs: 60_000,
  quorumTimeoutMs: 60_000,
  seed: 3,
  secureAggregation: mode,
  ...(mode === MODE ? { aggregationOptions: { maxExampleWeight: 1_000 } } : { none: { maxExampleWeight: 1_000 } }),
  ...overrides,
});

describe('a fourth aggregation mode registered from outside the house', () => {
  let coordinator: Coordinator;
  const clients: TributaryClient[] = [];
  const unregister: Array<() => void> = [];

  beforeAll(async () => {
    registerAggregationSpec(float64Spec);
    unregister.push(() => unregisterAggregationSpec(MODE));
    unregister.push(registerCoordinatorMode(MODE, float64CoordinatorMode));
    unregister.push(registerClientMode(float64ClientMode));
    coordinator = await startCoordinator({ port: 0, logLevel: 'error' });
  });

  afterAll(async () => {
    for (const c of clients) c.close();
    await coordinator?.close();
    for (const u of unregister) u();
  });

  async function runJob(jobSpec: JobSpecInput): Promise<{ id: string; weights: Float32Array[] }> {
    const id = await createJob(coordinator.url, jobSpec);
    for (const dataset of DATASETS) {
      const client = new TributaryClient({
        url: coordinator.url,
        jobId: id,
        identity: generateIdentity(),
        dataset,
        backend: 'cpu',
        allowPlaintext: true, // both `none` and this mode show the coordinator each update
      });
      clients.push(client);
      client.run().catch(() => undefined);
    }
    const job = await coordinator.jobs.waitForJob(id);
    expect(job.status).toBe('completed');
    const weights = decodeTensors(await coordinator.jobs.modelBytes(id, 1)).map((t) => t.data);
    return { id, weights };
  }

  it('validates its own options and rules at job creation', async () => {
    const bad = await createJob(coordinator.url, spec(MODE, { maxClients: 20 })).catch((e: unknown) => e);
    expect(bad).toMatchObject({
      code: 'JOB_SPEC_INVALID',
      message: expect.stringMatching(/x-float64 sums at most 10 clients/),
    });
  });

  it('runs a federation and commits the same model as plaintext FedAvg', async () => {
    const plain = await runJob(spec('none'));
    const custom = await runJob(spec(MODE));
    // The mode's own coordinator half took every client's upload.
    expect(accepted.get(custom.id)).toHaveLength(DATASETS.length);
    const round = (await coordinator.store.listRounds(custom.id))[0];
    expect(round.participants).toHaveLength(DATASETS.length);
    expect(round.metrics.numExamples).toBe(80 + 120 + 100);
    // Same data, seed and weighting: the models agree up to Float32-vs-Float64 summation.
    expect(custom.weights.map((t) => t.length)).toEqual(plain.weights.map((t) => t.length));
    let moved = 0;
    custom.weights.forEach((t, i) =>
      t.forEach((v, j) => {
        expect(Math.abs(v - plain.weights[i][j])).toBeLessThan(1e-5);
        moved = Math.max(moved, Math.abs(v));
      }),
    );
    expect(moved).toBeGreaterThan(0);

    // The round runner and the socket edge report to /metrics: phases timed, messages counted by outcome.
    const metrics = await (await fetch(`${coordinator.url}/metrics`)).text();
    const value = (pattern: RegExp) => Number(pattern.exec(metrics)?.[1] ?? Number.NaN);
    expect(value(/tributary_round_phase_seconds_count\{phase="collecting"\} (\d+)/)).toBeGreaterThanOrEqual(2);
    expect(value(/tributary_messages_total\{event="update:commit",code="ok"\} (\d+)/)).toBeGreaterThanOrEqual(6);
    expect(value(/tributary_bytes_total\{transport="socket",direction="in"\} (\d+)/)).toBeGreaterThan(0);
  });
});
