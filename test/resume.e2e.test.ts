/**
 * Resume after a crash: a coordinator on MongoDB (FerretDB here) is killed with SIGKILL mid-job and
 * restarted on the same database and port; it continues from the last committed round with the last
 * global model, and the client processes reconnect and rejoin by themselves.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { contentHash } from '../shared/codec/modelCodec';
import { NO_MONGO_REASON, mongoSourceForTests, mongoUriForTests, type TestMongo } from './support/ferretdb';
import { freePort, spawnTs, waitFor, type Spawned } from './support/processes';
import { downloadModel, getJob as getJobAction, getRounds } from '../client/buyer';
import { buyerClient, createJob } from './support/rest';
import { writeSeparableCsv } from './support/syntheticCsv';

jest.setTimeout(480_000);

const haveMongo = mongoSourceForTests() !== null;
if (!haveMongo) {
  if (process.env.CI === 'true') throw new Error(`Resume test cannot run in CI: ${NO_MONGO_REASON}`);
  console.warn(`\n*** SKIPPED: resume-after-SIGKILL test (${NO_MONGO_REASON}) ***\n`);
}
const describeIfMongo = haveMongo ? describe : describe.skip;

describeIfMongo('coordinator crash and resume', () => {
  let mongo: TestMongo;
  const processes: Spawned[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'trib-resume-'));

  beforeAll(async () => {
    mongo = (await mongoUriForTests())!;
  });
  afterAll(async () => {
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

  it('continues from the last committed round after SIGKILL, with clients rejoining', async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const first = startCoordinatorProcess(port);
    await first.waitForLine((l) => l.includes('"url"'), 60_000);

    const rounds = 6;
    const jobId = await createJob(url, {
      name: 'resume',
      model: { kind: 'builtin', name: 'mlp', hiddenUnits: [16] },
      input: { shape: [8], numClasses: 2 },
      rounds,
      minClients: 2,
      secureAggregation: 'none',
      localEpochs: 3,
      batchSize: 16,
      learningRate: 0.05,
      roundDeadlineMs: 120_000,
      quorumTimeoutMs: 120_000,
    });

    for (let i = 0; i < 2; i++) {
      const data = join(dir, `client${i}.csv`);
      writeSeparableCsv(data, 1500, 8, 100 + i);
      processes.push(
        spawnTs('client/cli.ts', [
          '--coordinator',
          url,
          '--job',
          jobId,
          '--data',
          data,
          '--key',
          join(dir, `client${i}.key`),
          '--json',
          '--backend',
          'cpu',
          '--allow-plaintext', // mode none
        ]),
      );
    }
    const clients = processes.slice(1);

    const buyer = buyerClient(url);
    const getJob = () => getJobAction(buyer, { jobId });
    await waitFor(async () => (await getJob()).currentRound >= 1, 120_000, 'round 1 to commit', 20);
    first.kill('SIGKILL');
    expect(await first.exit).toBe('SIGKILL');

    // Nothing answers now; the clients keep retrying with backoff.
    await expect(fetch(`${url}/v1/health`)).rejects.toThrow();

    const second = startCoordinatorProcess(port);
    await second.waitForLine((l) => l.includes('"url"'), 60_000);
    const atRestart = await getJob();
    expect(atRestart.status).toBe('running');
    expect(atRestart.currentRound).toBeGreaterThanOrEqual(1);
    expect(atRestart.currentRound).toBeLessThan(rounds);
    // The restarted coordinator serves the last committed global model, byte for byte.
    const resumedModel = await downloadModel(buyer, { jobId, round: atRestart.currentRound });
    expect(contentHash(resumedModel.bytes)).toBe(atRestart.modelHash);

    const final = await waitFor(
      async () => {
        const j = await getJob();
        return j.status !== 'running' ? j : null;
      },
      180_000,
      'the resumed job to finish',
    );
    expect(final.status).toBe('completed');
    expect(final.currentRound).toBe(rounds);

    const history = (await getRounds(buyer, { jobId, limit: 20 })).rounds as Array<{
      round: number;
      status: string;
      participants: string[];
      modelHash: string;
    }>;
    const completed = history.filter((r) => r.status === 'completed');
    // Every round committed exactly once, in order, none lost or redone across the crash.
    expect(completed.map((r) => r.round)).toEqual(Array.from({ length: rounds }, (_, i) => i + 1));
    expect(completed[rounds - 1].modelHash).toBe(final.modelHash);
    for (const r of completed) expect(r.participants).toHaveLength(2);
    // The clients reconnected to the new process and saw the job through.
    for (const c of clients) expect(await c.exit).toBe(0);
    const joinedLines = clients.map((c) => c.lines.filter((l) => l.includes('"event":"joined"')).length);
    for (const n of joinedLines) expect(n).toBeGreaterThanOrEqual(2);
  });
});
