/**
 * A provider trains only on the model its task names, played over real sockets and REST: whoever
 * serves the checkpoint download (a swapped checkpoint, a cache or proxy in front of the REST API)
 * hands the project's own clients well-formed model bytes of the right size that are not the task's
 * model. Each client refuses them by their SHA-256 (TRANSFER_HASH_MISMATCH, "does not hash to" the task's hash) and sends nothing for that
 * attempt; once the genuine model is served again, the retry trains and commits.
 */
import type { TributaryClient } from '../client/tributaryClient';
import { createResearchClient } from '../client/plantedClient';
import { startCoordinator, type Coordinator } from '../coordinator/server';
import { decodeTensors, encodeTensors } from '../shared/codec/modelCodec';
import { generateIdentity } from '../shared/identity/keyPair';
import { selectBackend } from '../shared/ml/backend';
import { createJob } from './support/rest';
import { separableDataset } from './support/syntheticCsv';
import { testBackend } from './support/testBackend';

jest.setTimeout(180_000);

describe('the downloaded model is checked against the task', () => {
  let coordinator: Coordinator | undefined;
  const clients: TributaryClient[] = [];

  beforeAll(async () => {
    await selectBackend(testBackend());
  });

  afterAll(async () => {
    for (const c of clients) c.close();
    await coordinator?.close();
  });

  it('refuses a swapped model of the right size by its hash, sends nothing, and trains on the genuine one at the retry', async () => {
    coordinator = await startCoordinator({ port: 0, logLevel: 'silent', backend: testBackend() });
    const jobId = await createJob(coordinator.url, {
      name: 'swapped-model',
      model: { kind: 'builtin', name: 'mlp', hiddenUnits: [4] },
      input: { shape: [4], numClasses: 2 },
      rounds: 1,
      minClients: 2,
      maxClients: 2,
      secureAggregation: 'none',
      roundDeadlineMs: 4_000,
      quorumTimeoutMs: 60_000,
      maxRoundRetries: 1,
    });
    const jobs = coordinator.jobs;
    const genuine = jobs.modelBytes.bind(jobs);
    const initial = decodeTensors(await genuine(jobId, 0));
    // Well-formed codec bytes of the job's exact manifest and size, every weight 0.5: only the hash tells.
    const swapped = encodeTensors(initial.map((t) => ({ ...t, data: new Float32Array(t.data.length).fill(0.5) })));
    expect(swapped.length).toBe((await genuine(jobId, 0)).length);
    let served = 0;
    jobs.modelBytes = async (id, round) => {
      served++;
      return served <= 2 ? Buffer.from(swapped) : genuine(id, round);
    };

    const warnings: string[] = [];
    for (let i = 0; i < 2; i++) {
      const client = createResearchClient({
        url: coordinator.url,
        jobId,
        identity: generateIdentity(),
        dataset: separableDataset(60, 4, 40 + i),
        backend: testBackend(),
        allowPlaintext: true, // mode none
        reconnectDelayMs: 50,
      });
      client.on('warning', (m: string) => warnings.push(m));
      clients.push(client);
    }
    const job = await coordinator.store.getJob(jobId);
    const finished = await Promise.all(clients.map((c) => c.run()));
    expect(finished.map((f) => f.status)).toEqual(['completed', 'completed']);

    // Both clients refused the swapped bytes by their hash ...
    const taskHash = job!.modelHash;
    expect(warnings.filter((w) => w.includes(`The downloaded model does not hash to ${taskHash}`))).toHaveLength(2);
    // ... and sent nothing for that attempt: it failed with both at the deadline, no participant.
    const rounds = await coordinator.store.listRounds(jobId);
    expect(rounds.map((r) => [r.round, r.attempt, r.status])).toEqual([
      [1, 0, 'failed'],
      [1, 1, 'completed'],
    ]);
    expect(rounds[0].participants).toEqual([]);
    expect(rounds[0].failures.map((f) => f.reason)).toEqual(['DEADLINE_EXCEEDED', 'DEADLINE_EXCEEDED']);
    // The retry trained on the genuine model: both updates counted.
    expect(rounds[1].participants).toHaveLength(2);
    expect(served).toBe(4);
  });
});
