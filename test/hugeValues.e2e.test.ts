/**
 * Valid but huge values, over real sockets and REST, on the memory store and on MongoDB (FerretDB):
 * a provider's training metric at the edge of a double (finite, so the schema admits it) must not
 * turn the round's recorded metric into Infinity or NaN, which JSON carries as null and which would
 * break every reader of the round (the buyer's SDK refuses the page); nor may a buyer's validation set
 * whose every feature is at the edge of float32 (the model's outputs overflow); a paging cursor naming a time
 * beyond any date, and a checkpoint round far past the job's, get coded client errors, not a 500.
 */
import { getRounds, uploadValidationSet } from '../client/buyer';
import { startCoordinator, type Coordinator } from '../coordinator/server';
import { encodeTensors } from '../shared/codec/modelCodec';
import type { TensorManifestEntry } from '../shared/codec/tensors';
import { generateIdentity } from '../shared/identity/keyPair';
import type { JoinResult } from '../shared/schemas/messages';
import { EVENTS, STAGES } from '../shared/schemas/protocol';
import { mongoSourceForTests, mongoUriForTests, type TestMongo } from './support/ferretdb';
import { RawClient } from './support/rawClient';
import { buyerClient, createJob } from './support/rest';

jest.setTimeout(180_000);

const zeros = (manifest: TensorManifestEntry[]) =>
  encodeTensors(
    manifest.map((m) => ({ name: m.name, shape: m.shape, data: new Float32Array(m.shape.reduce((a, b) => a * b, 1)) })),
  );

async function waitUntil(pred: () => boolean | Promise<boolean>, what: string, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const stores: Array<['memory' | 'mongodb', boolean]> = [
  ['memory', true],
  ['mongodb', mongoSourceForTests() !== null],
];

describe.each(stores)('valid but huge values (%s store)', (storeName, available) => {
  const maybe = available ? it : it.skip;
  let coordinator: Coordinator | undefined;
  let mongo: TestMongo | null = null;
  const clients: RawClient[] = [];

  beforeAll(async () => {
    if (!available) return;
    if (storeName === 'mongodb') mongo = await mongoUriForTests();
    coordinator = await startCoordinator({
      port: 0,
      logLevel: 'silent',
      backend: 'cpu',
      ...(mongo ? { mongodbUri: mongo.uri, dbName: mongo.dbName } : {}),
    });
  });
  afterAll(async () => {
    for (const c of clients) c.socket?.disconnect();
    await coordinator?.close();
    await mongo?.stop();
  });

  maybe('a training metric of 1.7e308 leaves the round metrics finite and readable', async () => {
    const c = coordinator!;
    const jobId = await createJob(c.url, {
      name: 'huge-metric',
      model: { kind: 'builtin', name: 'mlp', hiddenUnits: [4] },
      input: { shape: [4], numClasses: 2 },
      rounds: 1,
      minClients: 2,
      maxClients: 2,
      secureAggregation: 'none',
      roundDeadlineMs: 60_000,
      quorumTimeoutMs: 60_000,
    });
    let manifest: TensorManifestEntry[] = [];
    for (let i = 0; i < 2; i++) {
      const client = new RawClient(generateIdentity(), c.url);
      clients.push(client);
      await client.connect();
      const joined = await client.send(EVENTS.joinJob, client.signed(jobId, 0, STAGES.joinJob, {}));
      expect(joined.ok).toBe(true);
      manifest = (joined.result as JoinResult).weightManifest;
    }
    const [attacker, honest] = clients.slice(-2);
    await waitUntil(() => attacker.tasks.length > 0 && honest.tasks.length > 0, 'round tasks');
    // A metric name a MongoDB document cannot hold as a key ('.'), or any name outside [A-Za-z0-9_]:
    // refused at the edge with a code, keeping nothing (FerretDB refused the whole round record).
    for (const name of ['a.b', '$where', '', 'x'.repeat(65)]) {
      const refused = await attacker.upload(attacker.tasks[0], zeros(manifest), 10, { metrics: { [name]: 1 } });
      expect([name, refused.error?.code]).toEqual([name, 'VALIDATION_FAILED']);
    }
    // Finite, so the message schema admits it; times any example count it overflows a double.
    const big = await attacker.upload(attacker.tasks[0], zeros(manifest), 10, {
      metrics: { loss: 1.7e308, accuracy: -1.7e308 },
    });
    expect(big.ok).toBe(true);
    expect(
      (await honest.upload(honest.tasks[0], zeros(manifest), 10, { metrics: { loss: 0.5, accuracy: 1.7e308 } })).ok,
    ).toBe(true);
    await waitUntil(async () => (await c.store.getJob(jobId))?.status === 'completed', 'the job to complete');
    const [round] = await c.store.listRounds(jobId);
    for (const [name, value] of Object.entries(round.metrics))
      expect([name, Number.isFinite(value)]).toEqual([name, true]);
    // The buyer's SDK reads the rounds (it refuses a page whose metrics are not numbers).
    const { rounds } = await getRounds(buyerClient(c.url), { jobId });
    expect(rounds).toHaveLength(1);
  });

  maybe('a validation set at the edge of float32 leaves the round metrics finite and the job running', async () => {
    const c = coordinator!;
    const jobId = await createJob(c.url, {
      name: 'huge-validation-set',
      model: { kind: 'builtin', name: 'mlp', hiddenUnits: [4] },
      input: { shape: [4], numClasses: 2 },
      rounds: 1,
      minClients: 2,
      maxClients: 2,
      secureAggregation: 'none',
      roundDeadlineMs: 60_000,
      quorumTimeoutMs: 60_000,
    });
    // Every feature a float32 still holds (the parser admits it); the model's outputs overflow.
    const rows = [
      'f0,f1,f2,f3,label',
      ...Array.from({ length: 20 }, (_, i) => `3.4e38,-3.4e38,3.4e38,3.4e38,${i % 2}`),
    ];
    await uploadValidationSet(buyerClient(c.url), { jobId, data: `${rows.join('\n')}\n` });
    let manifest: TensorManifestEntry[] = [];
    const pair: RawClient[] = [];
    for (let i = 0; i < 2; i++) {
      const client = new RawClient(generateIdentity(), c.url);
      clients.push(client);
      pair.push(client);
      await client.connect();
      const joined = await client.send(EVENTS.joinJob, client.signed(jobId, 0, STAGES.joinJob, {}));
      expect(joined.ok).toBe(true);
      manifest = (joined.result as JoinResult).weightManifest;
    }
    await waitUntil(() => pair.every((p) => p.tasks.length > 0), 'round tasks');
    for (const p of pair) expect((await p.upload(p.tasks[0], zeros(manifest), 10)).ok).toBe(true);
    await waitUntil(async () => (await c.store.getJob(jobId))?.status !== 'running', 'the job to end', 60_000);
    const rounds = await c.store.listRounds(jobId);
    expect(rounds.map((r) => [r.status, r.failureReason])).toEqual([['completed', undefined]]);
    for (const [name, value] of Object.entries(rounds[0].metrics))
      expect([name, Number.isFinite(value)]).toEqual([name, true]);
    expect((await getRounds(buyerClient(c.url), { jobId })).rounds).toHaveLength(1);
  });

  maybe('the largest population a privacy block allows is planned, not refused as an operator error', async () => {
    const c = coordinator!;
    const jobId = await createJob(c.url, {
      name: 'huge-population',
      model: { kind: 'builtin', name: 'mlp', hiddenUnits: [4] },
      input: { shape: [4], numClasses: 2 },
      rounds: 10_000,
      secureAggregation: 'none',
      privacy: { epsilon: 1, delta: 1e-12, population: 1_000_000_000, clippingNorm: 1 },
    });
    expect((await c.store.getJob(jobId))?.privacy).toBeDefined();
  });

  maybe('a cursor beyond any date and a round far past the job are coded client errors', async () => {
    const c = coordinator!;
    const jobId = await createJob(c.url, {
      name: 'huge-cursor',
      model: { kind: 'builtin', name: 'mlp', hiddenUnits: [4] },
      input: { shape: [4], numClasses: 2 },
      rounds: 1,
      secureAggregation: 'none',
    });
    const cursor = Buffer.from(JSON.stringify([1e300, 'job_x'])).toString('base64url');
    const jobs = await fetch(`${c.url}/v1/jobs?cursor=${cursor}`);
    expect([jobs.status, ((await jobs.json()) as { error?: { code: string } }).error?.code]).toEqual([
      400,
      'VALIDATION_FAILED',
    ]);
    const checkpoint = await fetch(`${c.url}/v1/jobs/${jobId}/checkpoints/999999999`);
    expect([checkpoint.status, ((await checkpoint.json()) as { error?: { code: string } }).error?.code]).toEqual([
      404,
      'JOB_NO_MODEL',
    ]);
  });
});
