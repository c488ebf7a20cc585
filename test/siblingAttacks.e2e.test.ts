/**
 * Sibling attacks of a provider with well-formed, correctly signed socket messages, on a live
 * coordinator over loopback: answering a round it was not selected for, claiming a role its job's mode
 * does not have, joining a job that has completed, and opening a second connection under its own key.
 * Each gets its code; the round aggregates exactly the selected clients' updates.
 */
import nacl from 'tweetnacl';
import { startCoordinator, type Coordinator } from '../coordinator/server';
import { decodeTensors, encodeTensors } from '../shared/codec/modelCodec';
import type { TensorManifestEntry } from '../shared/codec/tensors';
import { generateIdentity, identityFromSecretKey } from '../shared/identity/keyPair';
import type { JoinResult } from '../shared/schemas/messages';
import { EVENTS, STAGES } from '../shared/schemas/protocol';
import { RawClient } from './support/rawClient';
import { createJob } from './support/rest';

jest.setTimeout(120_000);

const filled = (manifest: TensorManifestEntry[], value: number) =>
  encodeTensors(
    manifest.map((m) => ({
      name: m.name,
      shape: m.shape,
      data: new Float32Array(m.shape.reduce((a, b) => a * b, 1)).fill(value),
    })),
  );

async function waitUntil(pred: () => boolean | Promise<boolean>, what: string, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('sibling attacks of a provider', () => {
  let c: Coordinator;
  const clients: RawClient[] = [];

  beforeAll(async () => {
    c = await startCoordinator({ port: 0, logLevel: 'silent', backend: 'cpu' });
  });
  afterAll(async () => {
    for (const x of clients) x.socket?.disconnect();
    await c?.close();
  });

  const connect = async () => {
    const client = new RawClient(generateIdentity(), c.url);
    clients.push(client);
    await client.connect();
    return client;
  };

  it('an unselected member cannot answer the round; the sum is exactly the selected updates; a late join and a foreign role are refused', async () => {
    const jobId = await createJob(c.url, {
      name: 'sibling-attacks',
      model: { kind: 'builtin', name: 'mlp', hiddenUnits: [4] },
      input: { shape: [3], numClasses: 2 },
      rounds: 1,
      minClients: 2,
      maxClients: 2,
      secureAggregation: 'none',
      roundDeadlineMs: 60_000,
      quorumTimeoutMs: 60_000,
    });
    const initial = decodeTensors(await c.jobs.modelBytes(jobId, 0));
    // Three members join at once; the round selects two.
    const members = [await connect(), await connect(), await connect()];
    let manifest: TensorManifestEntry[] = [];
    const joins = await Promise.all(members.map((m) => m.send(EVENTS.joinJob, m.signed(jobId, 0, STAGES.joinJob, {}))));
    for (const j of joins) expect(j.ok).toBe(true);
    manifest = (joins[0].result as JoinResult).weightManifest;
    await waitUntil(() => members.filter((m) => m.tasks.length > 0).length === 2, 'two tasks');
    const selected = members.filter((m) => m.tasks.length > 0);
    const outsider = members.find((m) => m.tasks.length === 0)!;
    // The outsider answers with a task of its own making: the selected task's fields, its own signature.
    const forgedTask = { ...selected[0].tasks[0] };
    expect((await outsider.upload(forgedTask, filled(manifest, 5), 10)).error?.code).toBe('ROUND_NOT_SELECTED');
    // A role the mode does not have.
    const role = await outsider.send(EVENTS.keyholderJoin, outsider.signed(jobId, 0, STAGES.keyholderJoin, {}));
    expect(role.error?.code).toBe('VALIDATION_FAILED');
    for (const s of selected) expect((await s.upload(s.tasks[0], filled(manifest, 0.25), 10)).ok).toBe(true);
    await waitUntil(async () => (await c.store.getJob(jobId))?.status === 'completed', 'the job to complete');
    // The committed model is the initial one plus exactly the selected clients' mean (0.25).
    const committed = decodeTensors(await c.jobs.modelBytes(jobId, 1));
    committed.forEach((t, i) => {
      t.data.forEach((v, j) => expect(v).toBeCloseTo(initial[i].data[j] + 0.25, 5));
    });
    const [round] = await c.store.listRounds(jobId);
    expect(new Set(round.participants)).toEqual(new Set(selected.map((s) => s.identity.clientId)));

    // A join after the job completed.
    const late = await connect();
    const refused = await late.send(EVENTS.joinJob, late.signed(jobId, 0, STAGES.joinJob, {}));
    expect(refused.error?.code).toBe('JOB_NOT_RUNNING');
    expect((await c.store.listParticipants(jobId)).map((p) => p.clientId)).not.toContain(late.identity.clientId);
  });

  it('a second connection under one key replaces the first, which is closed', async () => {
    const first = await connect();
    const second = new RawClient(first.identity, c.url);
    clients.push(second);
    await second.connect();
    await waitUntil(() => !first.socket.connected, 'the first connection to close');
    expect(c.directory.link(first.identity.clientId)).toBeDefined();
    expect(second.socket.connected).toBe(true);
  });

  it('documents the limit: silent sybils joining a public job crowd the honest providers out of every sample', async () => {
    const jobId = await createJob(c.url, {
      name: 'sybil-crowd',
      model: { kind: 'builtin', name: 'mlp', hiddenUnits: [4] },
      input: { shape: [3], numClasses: 2 },
      rounds: 1,
      minClients: 2,
      maxClients: 2,
      maxRoundRetries: 1,
      secureAggregation: 'none',
      roundDeadlineMs: 1_000,
      quorumTimeoutMs: 60_000,
    });
    // Twenty keys of one stranger join and never answer; two honest providers answer every task. Fixed
    // keys and the job's seed make each attempt's sample the same in every run (no honest pair drawn).
    const fixed = async (n: number) => {
      const client = new RawClient(
        identityFromSecretKey(nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(n)).secretKey),
        c.url,
      );
      clients.push(client);
      await client.connect();
      return client;
    };
    const sybils = await Promise.all(Array.from({ length: 20 }, (_, i) => fixed(i + 1)));
    for (const s of sybils)
      expect((await s.send(EVENTS.joinJob, s.signed(jobId, 0, STAGES.joinJob, {}))).ok).toBe(true);
    const honest = [await fixed(101), await fixed(102)];
    let manifest: TensorManifestEntry[] = [];
    for (const h of honest) {
      const joined = await h.send(EVENTS.joinJob, h.signed(jobId, 0, STAGES.joinJob, {}));
      manifest = (joined.result as JoinResult).weightManifest;
      h.socket.on(EVENTS.roundTask, (task) => void h.upload(task, filled(manifest, 0.1), 10));
    }
    await waitUntil(async () => (await c.store.getJob(jobId))?.status !== 'running', 'the job to end');
    const job = await c.store.getJob(jobId);
    const rounds = await c.store.listRounds(jobId);
    // Each attempt drew 2 of the members; with 20 of 22 silent, quorum is met only if both honest are drawn.
    expect(job?.status).toBe('failed');
    expect(rounds.every((r) => r.status === 'failed')).toBe(true);
  });
});
