/**
 * A 10M-parameter update (40 MB) travels from a real socket.io client to the coordinator in chunks
 * under socket.io's deliberate per-message limit, and is aggregated exactly.
 */
import { decodeTensors, encodeTensors } from '../shared/codec/modelCodec';
import { totalParameters } from '../shared/codec/tensors';
import { generateIdentity } from '../shared/identity/keyPair';
import { MAX_CHUNK_BYTES, type JoinResult } from '../shared/schemas/messages';
import { STAGES, EVENTS } from '../shared/schemas/protocol';
import { startCoordinator, type Coordinator } from '../coordinator/server';
import { RawClient } from './support/rawClient';
import { createJob } from './support/rest';

jest.setTimeout(360_000);

describe('large updates', () => {
  let coordinator: Coordinator;
  let client: RawClient;

  beforeAll(async () => {
    coordinator = await startCoordinator({ port: 0, logLevel: 'silent', backend: 'cpu' });
  });
  afterAll(async () => {
    client?.socket?.disconnect();
    await coordinator?.close();
  });

  it('moves a 10M-parameter update in chunks and applies it exactly', async () => {
    // 1000 inputs x 10000 hidden + 10000 x 10: just over 10M parameters.
    const jobId = await createJob(coordinator.url, {
      name: 'large',
      model: { kind: 'builtin', name: 'mlp', hiddenUnits: [10_000] },
      input: { shape: [1000], numClasses: 10 },
      rounds: 1,
      minClients: 1,
      // Plaintext: this test checks that the chunked upload path moves 10M parameters exactly.
      secureAggregation: 'none',
    });
    client = new RawClient(generateIdentity(), coordinator.url);
    await client.connect();
    const joined = await client.send(EVENTS.joinJob, client.signed(jobId, 0, STAGES.joinJob, {}));
    const manifest = (joined.result as JoinResult).weightManifest;
    expect(totalParameters(manifest)).toBeGreaterThanOrEqual(10_000_000);
    const end = Date.now() + 60_000;
    while (client.tasks.length === 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    const task = client.tasks[0];
    const delta = manifest.map((m, i) => {
      const data = new Float32Array(m.shape.reduce((a, b) => a * b, 1));
      for (let j = 0; j < data.length; j += 1013) data[j] = ((i + 1) * j) % 7;
      return { name: m.name, shape: m.shape, data };
    });
    const bytes = encodeTensors(delta);
    expect(bytes.length).toBeGreaterThan(40_000_000);
    expect(Math.ceil(bytes.length / task.chunkBytes)).toBeGreaterThan(1);
    expect(task.chunkBytes).toBeLessThanOrEqual(MAX_CHUNK_BYTES);
    const initial = decodeTensors(await coordinator.jobs.modelBytes(jobId, 0));
    const reply = await client.upload(task, bytes, 5);
    expect(reply).toEqual({ ok: true });
    expect((await coordinator.jobs.waitForJob(jobId)).status).toBe('completed');
    const after = decodeTensors(await coordinator.jobs.modelBytes(jobId, 1));
    for (const i of [0, after.length - 1]) {
      for (let j = 0; j < after[i].data.length; j += 1013 * 97) {
        expect(after[i].data[j]).toBeCloseTo(initial[i].data[j] + delta[i].data[j], 5);
      }
    }
  });
});
