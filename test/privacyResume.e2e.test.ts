/**
 * A DP job's budget survives a crash: a coordinator on MongoDB (FerretDB here) runs a job with a
 * `privacy` block, is killed with SIGKILL mid-job and restarted on the same database and port; the
 * in-process clients reconnect, and the rounds after the restart keep composing the accountant from
 * what the rounds before it spent (a reset would report one round's epsilon again).
 */
import { TributaryClient } from '../client/tributaryClient';
import type { RoundRecord } from '../coordinator/store/store';
import { generateIdentity } from '../shared/identity/keyPair';
import { RdpAccountant } from '../shared/privacy/rdpAccountant';
import { NO_MONGO_REASON, mongoSourceForTests, mongoUriForTests, type TestMongo } from './support/ferretdb';
import { freePort, spawnTs, waitFor, type Spawned } from './support/processes';
import { createJob } from './support/rest';
import { separableDataset } from './support/syntheticCsv';

jest.setTimeout(240_000);

const haveMongo = mongoSourceForTests() !== null;
if (!haveMongo) {
  if (process.env.CI === 'true') throw new Error(`Privacy resume test cannot run in CI: ${NO_MONGO_REASON}`);
  console.warn(`\n*** SKIPPED: DP resume-after-SIGKILL test (${NO_MONGO_REASON}) ***\n`);
}
const describeIfMongo = haveMongo ? describe : describe.skip;

const ROUNDS = 6;
const Z = 1.2;
const DELTA = 1e-3;

describeIfMongo('a DP job resumed after a crash', () => {
  let mongo: TestMongo;
  const processes: Spawned[] = [];
  const clients: TributaryClient[] = [];

  beforeAll(async () => {
    mongo = (await mongoUriForTests())!;
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    for (const p of processes) p.kill('SIGKILL');
    await Promise.all(processes.map((p) => p.exit));
    await mongo?.stop();
  });

  function startCoordinatorProcess(port: number): Spawned {
    const p = spawnTs(
      'coordinator/cli.ts',
      ['--port', String(port), '--json', '--log-level', 'info', '--backend', 'cpu'],
      {
        MONGODB_URI: mongo.uri,
        TRIBUTARY_DB_NAME: mongo.dbName,
      },
    );
    processes.push(p);
    return p;
  }

  it('continues spending the budget from where the killed coordinator left it', async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const first = startCoordinatorProcess(port);
    await first.waitForLine((l) => l.includes('"url"'), 60_000);
    const jobId = await createJob(url, {
      name: 'dp-resume',
      model: { kind: 'builtin', name: 'mlp', hiddenUnits: [8] },
      input: { shape: [6], numClasses: 2 },
      rounds: ROUNDS,
      minClients: 2,
      maxClients: 2,
      secureAggregation: 'none',
      // Enough local work per round (a second or so) that the kill lands mid-job.
      localEpochs: 3,
      batchSize: 16,
      learningRate: 0.05,
      roundDeadlineMs: 60_000,
      quorumTimeoutMs: 60_000,
      privacy: { epsilon: 50, delta: DELTA, clippingNorm: 1, noiseMultiplier: Z },
    });
    const runs = [0, 1].map((i) => {
      const client = new TributaryClient({
        url,
        jobId,
        identity: generateIdentity(),
        dataset: separableDataset(1500, 6, 70 + i),
        backend: 'cpu',
        allowPlaintext: true, // mode none
        reconnectDelayMs: 100,
        maxReconnectDelayMs: 1_000,
      });
      clients.push(client);
      let joins = 0;
      client.on('joined', () => joins++);
      return { done: client.run(), joins: () => joins };
    });

    const rounds = async () =>
      ((await (await fetch(`${url}/v1/jobs/${jobId}/rounds`)).json()) as { rounds: RoundRecord[] }).rounds;
    const getJob = async () =>
      (await (await fetch(`${url}/v1/jobs/${jobId}`)).json()) as { status: string; currentRound: number };
    await waitFor(async () => (await getJob()).currentRound >= 2, 120_000, 'round 2 to commit', 20);
    first.kill('SIGKILL');
    expect(await first.exit).toBe('SIGKILL');

    const second = startCoordinatorProcess(port);
    await second.waitForLine((l) => l.includes('"url"'), 60_000);
    const resumedAt = (await getJob()).currentRound;
    expect(resumedAt).toBeGreaterThanOrEqual(2);
    expect(resumedAt).toBeLessThan(ROUNDS);
    const beforeCrash = (await rounds()).filter((r) => r.status === 'completed');
    const spentBeforeCrash = Math.max(...beforeCrash.map((r) => r.privacy!.rounds));

    const final = await waitFor(
      async () => {
        const j = await getJob();
        return j.status !== 'running' ? j : null;
      },
      180_000,
      'the resumed job to finish',
    );
    expect(final).toMatchObject({ status: 'completed', currentRound: ROUNDS });
    for (const r of runs) expect(await r.done).toMatchObject({ status: 'completed' });
    // Both clients rejoined the restarted coordinator.
    for (const r of runs) expect(r.joins()).toBeGreaterThanOrEqual(2);

    const completed = (await rounds()).filter((r) => r.status === 'completed');
    expect(completed.map((r) => r.round)).toEqual([1, 2, 3, 4, 5, 6]);
    const composed = completed.map((r) => r.privacy!.rounds);
    // Every round composed onto the ones before it (a round the crash cut off mid-way is charged again when rerun).
    for (let k = 1; k < composed.length; k++) expect(composed[k]).toBeGreaterThan(composed[k - 1]);
    const afterRestart = completed.filter((r) => r.round > resumedAt);
    expect(afterRestart.length).toBeGreaterThan(0);
    expect(afterRestart[0].privacy!.rounds).toBeGreaterThan(spentBeforeCrash);
    // Each record's epsilon is what that many rounds at q = 1 spend: not one round's epsilon again.
    for (const r of completed) {
      expect(r.privacy!.samplingRate).toBe(1);
      expect(r.privacy!.epsilon).toBeCloseTo(new RdpAccountant().step(1, Z, r.privacy!.rounds).epsilon(DELTA), 9);
    }
    const oneRound = new RdpAccountant().step(1, Z).epsilon(DELTA);
    expect(afterRestart[0].privacy!.epsilon).toBeGreaterThan(oneRound * 1.5);
  });
});
