/**
 * A full federation end to end: an in-process coordinator on 127.0.0.1, three client processes
 * started through the CLI, each with its own slice of the real MNIST digits from the `mnist`
 * package, three FedAvg rounds of the built-in CNN, and the buyer's validation set uploaded over
 * REST. Asserts validation accuracy above 90 %, and that no byte the coordinator receives contains
 * a canary planted in one client's data.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { datasetToCsv } from '../shared/data/csvWriter';
import { loadMnist } from '../shared/data/mnist';
import { partitionIid } from '../shared/data/partition';
import { startCoordinator, type Coordinator } from '../coordinator/server';
import { spawnTs, type Spawned } from './support/processes';
import { recordReceivedPackets } from './support/packetRecorder';
import { createJob, uploadValidationSet } from '../client/buyer';
import { buyerClient } from './support/rest';

jest.setTimeout(600_000);

const input = { shape: [28, 28, 1], numClasses: 10, labelColumn: 'label' };
// Distinctive pixel values no model weight or digit will hold in this order.
const CANARY = [0.31415927, 0.27182817, 0.14142136, 0.17320508, 0.22360679, 0.24494897, 0.26457513, 0.28284271];

describe('federated MNIST end to end', () => {
  let coordinator: Coordinator;
  const processes: Spawned[] = [];
  const received: Buffer[] = [];
  const receivedText: string[] = [];

  beforeAll(async () => {
    coordinator = await startCoordinator({ port: 0, logLevel: 'error' });
    // Record every packet the coordinator's socket.io engine receives, already unmasked and decoded.
    recordReceivedPackets(coordinator.io, { binary: received, text: receivedText });
  });

  afterAll(async () => {
    for (const p of processes) p.kill('SIGKILL');
    await Promise.all(processes.map((p) => p.exit));
    await coordinator?.close();
  });

  it('trains the CNN to > 90 % validation accuracy in 3 rounds with 3 clients, and raw data never leaves', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'trib-fed-'));
    // The buyer, through the SDK: its requests are signed, so it owns the job.
    const buyer = buyerClient(coordinator.url);
    const { id: jobId } = await createJob(buyer, {
      spec: {
        name: 'mnist-e2e',
        model: { kind: 'builtin', name: 'mnist-cnn' },
        input,
        rounds: 3,
        minClients: 3,
        localEpochs: 2,
        batchSize: 32,
        learningRate: 0.05,
        roundDeadlineMs: 240_000,
        quorumTimeoutMs: 120_000,
        seed: 7,
      },
    });

    const validation = loadMnist({ offset: 9000, count: 1000 });
    const upload = await uploadValidationSet(buyer, { jobId, data: datasetToCsv(validation, input) });
    expect(upload.examples).toBe(1000);

    const shards = partitionIid(loadMnist({ offset: 0, count: 6000 }), 3, 7);
    shards.forEach((shard, i) => {
      const file = join(dir, `client${i}.csv`);
      let csv = datasetToCsv(shard, input);
      if (i === 0) {
        // The canary row: the CNN's input, 784 pixels starting with CANARY, labelled 3.
        const pixels = Array.from({ length: 784 }, (_, k) => (k < CANARY.length ? CANARY[k] : 0));
        csv += `${[...pixels, 3].join(',')}\n`;
      }
      writeFileSync(file, csv);
      processes.push(
        spawnTs('client/cli.ts', [
          '--coordinator',
          coordinator.url,
          '--job',
          jobId,
          '--data',
          file,
          '--key',
          join(dir, `c${i}.key`),
          '--json',
        ]),
      );
    });

    const started = Date.now();
    const job = await coordinator.jobs.waitForJob(jobId);
    const wall = (Date.now() - started) / 1000;
    expect(job.status).toBe('completed');
    for (const p of processes) expect(await p.exit).toBe(0);

    const rounds = await coordinator.store.listRounds(jobId);
    const completed = rounds.filter((r) => r.status === 'completed');
    expect(completed.map((r) => r.round)).toEqual([1, 2, 3]);
    const accuracy = completed.map((r) => r.metrics.validation_accuracy);
    // eslint-disable-next-line no-console
    console.log(
      `MNIST e2e: backend ${coordinator.backend}; validation accuracy by round ${accuracy.map((a) => (100 * a).toFixed(1)).join(' / ')} %; ` +
        `round seconds ${completed.map((r) => (r.metrics.durationMs / 1000).toFixed(1)).join(' / ')}; wall ${wall.toFixed(1)} s`,
    );
    expect(accuracy[2]).toBeGreaterThan(0.9);
    expect(accuracy[2]).toBeGreaterThan(accuracy[0] - 0.02);
    for (const r of completed) expect(r.participants).toHaveLength(3);

    // The global model is downloadable in TF.js format and matches the last round.
    const modelJson = (await (await fetch(`${coordinator.url}/v1/jobs/${jobId}/model/model.json`)).json()) as {
      weightsManifest: Array<{ weights: Array<{ shape: number[] }> }>;
      tributary: { round: number; modelHash: string };
    };
    expect(modelJson.tributary).toEqual({ jobId, round: 3, modelHash: job.modelHash });
    const weightsBin = await (await fetch(`${coordinator.url}/v1/jobs/${jobId}/model/weights.bin`)).arrayBuffer();
    const params = modelJson.weightsManifest[0].weights.reduce((n, w) => n + w.shape.reduce((a, b) => a * b, 1), 0);
    expect(weightsBin.byteLength).toBe(params * 4);

    // Raw data never leaves: neither the canary's float32 bytes nor its text reached the coordinator.
    expect(received.length).toBeGreaterThan(0);
    const canaryBytes = Buffer.from(new Float32Array(CANARY.slice(0, 4)).buffer);
    for (const b of received) expect(b.indexOf(canaryBytes)).toBe(-1);
    for (const t of receivedText) {
      expect(t.includes('0.31415927')).toBe(false);
      expect(t.includes('0.27182817')).toBe(false);
    }
    // Sanity of the check itself: the canary bytes are findable when present.
    expect(Buffer.concat([Buffer.from([1, 2]), canaryBytes]).indexOf(canaryBytes)).toBe(2);
  });
});
