/**
 * SecAgg+ cohorts end to end (`secagg.cohortSize`): six in-process clients split into two cohorts of
 * three, each cohort running its own SecAgg+ session. Checks that the round-1 model equals plaintext
 * FedAvg's within the quantisation bound, that the round-completed hook gets two disjoint cohorts
 * whose sums add up to the round's aggregate, that the round record keeps the membership, and that a
 * cohort losing two of its three clients aborts alone while the other cohort's sum commits the round.
 */
import { TributaryClient } from '../client/tributaryClient';
import type { RoundCompletedEvent } from '../coordinator/ports';
import { startCoordinator, type Coordinator } from '../coordinator/server';
import { decodeBinaryJson } from '../shared/codec/binaryJson';
import type { Dataset } from '../shared/data/dataset';
import { generateIdentity } from '../shared/identity/keyPair';
import type { JobSpecInput } from '../shared/schemas/jobSpec';
import type { SecAggRequest } from '../shared/schemas/messages';
import { EVENTS } from '../shared/schemas/protocol';
import { weightedMeanErrorBound } from '../shared/secagg';
import { separableDataset } from './support/syntheticCsv';
import { compareRoundOne, connectionOfLater } from './support/secureRounds';
import { createJob } from './support/rest';

jest.setTimeout(300_000);

const FEATURES = 8;
const SIZES = [120, 160, 90, 200, 140, 110];
const MAX_EXAMPLE_WEIGHT = 1000;

const separable = (count: number, seed: number): Dataset => separableDataset(count, FEATURES, seed);
const DATASETS = SIZES.map((n, i) => separable(n, 21 + i));

function spec(mode: 'none' | 'secagg', overrides: Partial<JobSpecInput> = {}): JobSpecInput {
  return {
    name: `secagg-cohorts-e2e-${mode}`,
    model: { kind: 'builtin', name: 'mlp', hiddenUnits: [16] },
    input: { shape: [FEATURES], numClasses: 2 },
    rounds: 1,
    minClients: 6,
    localEpochs: 1,
    batchSize: 16,
    learningRate: 0.1,
    roundDeadlineMs: 120_000,
    quorumTimeoutMs: 120_000,
    maxRoundRetries: 1,
    seed: 7,
    secureAggregation: mode,
    ...(mode === 'secagg'
      ? { secagg: { stageTimeoutMs: 30_000, maxExampleWeight: MAX_EXAMPLE_WEIGHT, cohortSize: 3 } }
      : {}),
    ...overrides,
  };
}

/** Calls `f` with the client's connection once run() has created it. */

describe('secure aggregation cohorts (secagg.cohortSize) end to end', () => {
  let coordinator: Coordinator;
  const clients: TributaryClient[] = [];
  const events: RoundCompletedEvent[] = [];

  beforeAll(async () => {
    coordinator = await startCoordinator(
      { port: 0, logLevel: 'error' },
      { onRoundCompleted: (e) => void events.push(e) },
    );
  });

  afterAll(async () => {
    for (const c of clients) c.close();
    await coordinator?.close();
  });

  function startClients(
    jobId: string,
    setup: (client: TributaryClient, index: number) => void = () => undefined,
  ): TributaryClient[] {
    return DATASETS.map((dataset, i) => {
      const client = new TributaryClient({
        url: coordinator.url,
        jobId,
        identity: generateIdentity(),
        dataset,
        backend: 'cpu',
        allowPlaintext: true, // the plaintext baseline jobs here run in mode none
      });
      setup(client, i);
      client.run().catch(() => undefined);
      clients.push(client);
      return client;
    });
  }

  it('rejects a cohortSize below 3 or above minClients', async () => {
    for (const secagg of [{ cohortSize: 2 }, { cohortSize: 7 }]) {
      const refused = await createJob(coordinator.url, spec('secagg', { secagg })).catch((e: unknown) => e);
      expect(refused).toMatchObject({ code: 'JOB_SPEC_INVALID', status: 400 });
    }
  });

  it('trains the plaintext round-1 model with two cohorts of three whose sums add up to the aggregate', async () => {
    const plainId = await createJob(coordinator.url, spec('none'));
    startClients(plainId);
    expect((await coordinator.jobs.waitForJob(plainId)).status).toBe('completed');

    const secureId = await createJob(coordinator.url, spec('secagg'));
    startClients(secureId);
    expect((await coordinator.jobs.waitForJob(secureId)).status).toBe('completed');

    const [round] = (await coordinator.store.listRounds(secureId)).filter((r) => r.status === 'completed');
    expect(round.participants).toHaveLength(6);
    expect(round.failures).toEqual([]);
    expect(round.metrics.numExamples).toBe(SIZES.reduce((a, b) => a + b, 0));

    const event = events.find((e) => e.job.id === secureId && e.round.round === 1)!;
    expect(event.parts).toHaveLength(2);
    const cohorts = event.parts!;
    for (const c of cohorts) {
      expect(c.members).toHaveLength(3);
      expect(c.updates.clientCount).toBe(3);
    }
    const members = cohorts.flatMap((c) => c.members);
    expect(new Set(members).size).toBe(6);
    expect([...members].sort()).toEqual([...round.participants].sort());
    // The record keeps the membership (not the sums), also after a reload from the store.
    expect(round.cohorts).toEqual(cohorts.map((c) => c.members));
    expect(event.round.cohorts).toEqual(round.cohorts);
    // Plaintext jobs have no cohorts.
    expect(events.find((e) => e.job.id === plainId)?.partKind).not.toBe('cohort');

    // The cohort sums add up to the aggregate FedAvg applied: model1 = model0 + Σ sums / Σ weights.
    const { initial, secure1, meanAbs, worst } = await compareRoundOne(coordinator.store, plainId, secureId);
    const weightSum = cohorts.reduce((a, c) => a + c.updates.totalWeight, 0);
    expect(Math.round(weightSum)).toBe(round.metrics.numExamples);
    secure1.forEach((t, i) =>
      t.data.forEach((v, j) => {
        const sum = cohorts[0].updates.weightedDeltaSum[i][j] + cohorts[1].updates.weightedDeltaSum[i][j];
        expect(Math.abs(v - Math.fround(initial[i].data[j] + sum / weightSum))).toBeLessThanOrEqual(
          2 * Math.abs(v) * 2 ** -23 + 1e-12,
        );
      }),
    );

    // Round 1 starts from the same model and the same local updates, so only quantisation differs.
    // The bound is stated in the ratios the clients quantise (w_i / maxExampleWeight).
    const ratioSum = weightSum / MAX_EXAMPLE_WEIGHT;
    const bound = weightedMeanErrorBound(meanAbs, ratioSum, 6, { clippingRange: 8, quantizationRange: 2 ** 22 });
    expect(worst).toBeLessThanOrEqual(bound);
  });

  it("drops a cohort that loses two of its three clients and commits the other cohort's sum", async () => {
    const jobId = await createJob(
      coordinator.url,
      spec('secagg', { minClients: 3, rounds: 2, name: 'secagg-cohorts-dropout' }),
    );
    const cohortOf = new Map<TributaryClient, string[]>();
    const dropped: string[] = [];
    let anchor: string | undefined;
    const started = startClients(jobId, (client) => {
      connectionOfLater(client, (conn) =>
        conn.socket.on(EVENTS.secaggRequest, (req: SecAggRequest) => {
          if (req.stage === 'setup')
            cohortOf.set(client, (decodeBinaryJson(req.payload) as { clientIds: string[] }).clientIds);
        }),
      );
      client.on('modeStep', (r) => {
        // Round 2 (all six connected by then): the two other members of the first client's cohort leave.
        const cohort = cohortOf.get(client);
        if (r.round !== 2 || r.stage !== 'collect-masked-vectors' || !anchor || !cohort || cohort.length !== 3) return;
        if (!cohort.includes(anchor) || client.clientId === anchor) return;
        dropped.push(client.clientId);
        client.close();
      });
    });
    anchor = started[0].clientId;
    const job = await coordinator.jobs.waitForJob(jobId);
    expect(job.status).toBe('completed');
    expect(dropped).toHaveLength(2);

    const rounds = await coordinator.store.listRounds(jobId);
    const round2 = rounds.find((r) => r.round === 2 && r.status === 'completed')!;
    expect(round2.selected).toHaveLength(6);
    expect(round2.participants).toHaveLength(3);
    for (const id of [anchor, ...dropped]) expect(round2.participants).not.toContain(id);
    const reasons = new Map(round2.failures.map((f) => [f.clientId, f.reason]));
    expect([...reasons.keys()].sort()).toEqual([anchor, ...dropped].sort());
    for (const id of dropped) expect(reasons.get(id)).toMatch(/DISCONNECTED/);
    expect(reasons.get(anchor)).toMatch(/^SECAGG_COHORT_ABORTED \(cohort \d\): ROUND_QUORUM_NOT_MET/);
    expect(round2.cohorts).toEqual([round2.participants]);

    const event = events.find((e) => e.job.id === jobId && e.round.round === 2)!;
    expect(event.parts).toHaveLength(1);
    expect(event.parts![0].members).toEqual(round2.participants);
    expect(event.parts![0].updates.clientCount).toBe(3);
    expect(round2.metrics.numExamples).toBe(Math.round(event.parts![0].updates.totalWeight));
  });
});
