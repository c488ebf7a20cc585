/**
 * Bad input never hurts the coordinator: a real coordinator on 127.0.0.1, real socket.io clients
 * sending malformed, oversize, mis-signed, replayed, wrong-round and duplicate messages. Each gets its
 * coded error, the coordinator keeps serving, and the global model and store stay unchanged until
 * valid updates arrive, after which the aggregate is exactly the mean of the valid ones.
 */
import { decodeTensors, encodeTensors } from '../shared/codec/modelCodec';
import type { NamedTensor, TensorManifestEntry } from '../shared/codec/tensors';
import { generateIdentity } from '../shared/identity/keyPair';
import { newNonce } from '../shared/identity/signing';
import { PROTOCOL_VERSION, type JoinResult } from '../shared/schemas/messages';
import { EVENTS, STAGES } from '../shared/schemas/protocol';
import { handshakeAuth } from '../client/coordinatorConnection';
import { startCoordinator, type Coordinator } from '../coordinator/server';
import { RawClient, type AckReply } from './support/rawClient';
import { createJob } from './support/rest';

jest.setTimeout(300_000);

const filled = (manifest: TensorManifestEntry[], value: number): NamedTensor[] =>
  manifest.map((m) => ({
    name: m.name,
    shape: m.shape,
    data: new Float32Array(m.shape.reduce((a, b) => a * b, 1)).fill(value),
  }));

async function waitUntil(pred: () => boolean, what: string, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('bad input against a live coordinator', () => {
  let coordinator: Coordinator;
  let jobId: string;
  const clients: RawClient[] = [];

  beforeAll(async () => {
    coordinator = await startCoordinator({ port: 0, logLevel: 'silent', backend: 'cpu' });
    jobId = await createJob(coordinator.url, {
      name: 'bad-input',
      model: { kind: 'builtin', name: 'mlp', hiddenUnits: [8] },
      input: { shape: [4], numClasses: 3 },
      rounds: 1,
      minClients: 2,
      secureAggregation: 'none',
      maxClients: 2,
      roundDeadlineMs: 120_000,
      quorumTimeoutMs: 120_000,
    });
  });

  afterAll(async () => {
    for (const c of clients) c.socket?.disconnect();
    await coordinator?.close();
  });

  async function unchanged(hashBefore: string) {
    const job = await coordinator.store.getJob(jobId);
    expect(job?.modelHash).toBe(hashBefore);
    expect(job?.currentRound).toBe(0);
    expect((await coordinator.store.listRounds(jobId)).filter((r) => r.status === 'completed')).toHaveLength(0);
  }

  it('refuses bad handshakes with coded errors', async () => {
    const id = generateIdentity();
    const attempt = async (auth: unknown) => {
      const c = new RawClient(id, coordinator.url);
      try {
        await c.connect(auth);
        c.socket.disconnect();
        return 'connected';
      } catch (err) {
        return ((err as { data?: { code?: string } }).data?.code ?? 'none') as string;
      }
    };
    expect(await attempt({})).toBe('AUTH_REQUIRED');
    expect(await attempt({ ...handshakeAuth(id, coordinator.url), publicKey: 'zz' })).toBe('AUTH_REQUIRED');
    expect(await attempt({ ...handshakeAuth(id, coordinator.url), protocolVersion: PROTOCOL_VERSION + 1 })).toBe(
      'PROTOCOL_VERSION_MISMATCH',
    );
    expect(
      await attempt({
        ...handshakeAuth(id, coordinator.url),
        signature: handshakeAuth(generateIdentity(), coordinator.url).signature,
      }),
    ).toBe('AUTH_BAD_SIGNATURE');
    expect(await attempt(handshakeAuth(id, coordinator.url, Date.now() - 10 * 60_000))).toBe('AUTH_STALE');
    const once = handshakeAuth(id, coordinator.url);
    expect(await attempt(once)).toBe('connected');
    expect(await attempt(once)).toBe('AUTH_REPLAY');
  });

  it('answers malformed, unsigned, mis-signed, replayed and misrouted messages with codes', async () => {
    const a = new RawClient(generateIdentity(), coordinator.url);
    clients.push(a);
    await a.connect();
    const hashBefore = (await coordinator.store.getJob(jobId))!.modelHash;
    const code = async (event: string, message: unknown) => (await a.send(event, message)).error?.code;

    expect(await code(EVENTS.joinJob, 'not an object')).toBe('VALIDATION_FAILED');
    expect(await code(EVENTS.joinJob, { jobId })).toBe('VALIDATION_FAILED');
    expect(await code(EVENTS.joinJob, { ...a.signed(jobId, 0, STAGES.joinJob, {}), signature: undefined })).toBe(
      'VALIDATION_FAILED',
    );
    expect(
      await code(EVENTS.joinJob, a.signed(jobId, 0, STAGES.joinJob, {}, undefined, { signature: 'ab'.repeat(64) })),
    ).toBe('AUTH_BAD_SIGNATURE');
    // Signed by another key than the connection's.
    const other = new RawClient(generateIdentity(), coordinator.url);
    expect(await code(EVENTS.joinJob, other.signed(jobId, 0, STAGES.joinJob, {}))).toBe('AUTH_BAD_SIGNATURE');
    // Signature over a different round than the message claims.
    expect(await code(EVENTS.joinJob, { ...a.signed(jobId, 0, STAGES.joinJob, {}), round: 1 })).toBe(
      'AUTH_BAD_SIGNATURE',
    );
    expect(await code(EVENTS.joinJob, a.signed(jobId, 0, STAGES.updateCommit, {}))).toBe('VALIDATION_FAILED');
    expect(await code(EVENTS.joinJob, a.signed(jobId, 0, STAGES.joinJob, '{not json'))).toBe('VALIDATION_FAILED');
    expect(await code(EVENTS.joinJob, a.signed('job_doesnotexist', 0, STAGES.joinJob, {}))).toBe('JOB_NOT_FOUND');
    expect(await code(EVENTS.joinJob, a.signed(jobId, 0, STAGES.joinJob, { extra: 1 }))).toBe('VALIDATION_FAILED');
    // Updates before joining.
    expect(
      await code(
        EVENTS.updateCommit,
        a.signed(jobId, 1, STAGES.updateCommit, {
          transferId: newNonce(),
          updateHash: 'a'.repeat(64),
          numExamples: 1,
          metrics: {},
        }),
      ),
    ).toBe('JOB_NOT_JOINED');

    const join = a.signed(jobId, 0, STAGES.joinJob, {});
    const joined = await a.send(EVENTS.joinJob, join);
    expect(joined.ok).toBe(true);
    expect((joined.result as JoinResult).weightManifest.length).toBeGreaterThan(0);
    expect(await code(EVENTS.joinJob, join)).toBe('AUTH_REPLAY');

    // Unknown events and messages without an ack still get a coded error, as an event.
    a.socket.emit('no-such-event', { x: 1 });
    a.socket.emit(EVENTS.joinJob, 42);
    await waitUntil(() => a.errors.length >= 2, 'error events');
    expect(a.errors.map((e) => e.code)).toEqual(['VALIDATION_FAILED', 'VALIDATION_FAILED']);
    await unchanged(hashBefore);
  });

  it('rejects bad updates without touching the model, then aggregates exactly the valid ones', async () => {
    const a = clients[0];
    const b = new RawClient(generateIdentity(), coordinator.url);
    clients.push(b);
    await b.connect();
    const joinedB = await b.send(EVENTS.joinJob, b.signed(jobId, 0, STAGES.joinJob, {}));
    expect(joinedB.ok).toBe(true);
    await waitUntil(() => a.tasks.length > 0 && b.tasks.length > 0, 'round tasks');
    const task = a.tasks[0];
    expect(task.round).toBe(1);
    const manifest = (joinedB.result as JoinResult).weightManifest;
    const hashBefore = (await coordinator.store.getJob(jobId))!.modelHash;
    const initial = decodeTensors(await coordinator.jobs.modelBytes(jobId, 0));

    const codeOf = async (p: Promise<AckReply>) => (await p).error?.code;
    const good = encodeTensors(filled(manifest, 0.5));
    expect(await codeOf(a.upload(task, good, 1, { round: 2 }))).toBe('ROUND_WRONG');
    expect(
      await codeOf(
        a.send(
          EVENTS.updateCommit,
          a.signed(jobId, 1, STAGES.updateCommit, {
            transferId: newNonce(),
            updateHash: 'a'.repeat(64),
            numExamples: 1,
            metrics: {},
          }),
        ),
      ),
    ).toBe('TRANSFER_UNKNOWN');
    expect(
      await codeOf(
        a.send(
          EVENTS.updateChunk,
          a.signed(
            jobId,
            1,
            STAGES.updateChunk,
            { transferId: newNonce(), index: 0, count: 25, totalBytes: 100_000_000 },
            new Uint8Array(10),
          ),
        ),
      ),
    ).toBe('PAYLOAD_TOO_LARGE');
    // Beyond what any model may declare, the schema already refuses it.
    expect(
      await codeOf(
        a.send(
          EVENTS.updateChunk,
          a.signed(
            jobId,
            1,
            STAGES.updateChunk,
            { transferId: newNonce(), index: 0, count: 1, totalBytes: 400_000_000 },
            new Uint8Array(10),
          ),
        ),
      ),
    ).toBe('VALIDATION_FAILED');
    expect(await codeOf(a.upload(task, new Uint8Array(good.length).fill(7), 1))).toBe('CODEC_MALFORMED');
    expect(await codeOf(a.upload(task, encodeTensors(filled(manifest, 0.5).slice(1)), 1))).toBe('MODEL_SHAPE_MISMATCH');
    const reshaped = filled(manifest, 0.5).map((t, i) => (i === 0 ? { ...t, shape: [...t.shape].reverse() } : t));
    if (manifest[0].shape.length > 1 && manifest[0].shape[0] !== manifest[0].shape[1]) {
      expect(await codeOf(a.upload(task, encodeTensors(reshaped), 1))).toBe('MODEL_SHAPE_MISMATCH');
    }
    const nan = filled(manifest, 0.5);
    nan[nan.length - 1].data[0] = NaN;
    expect(await codeOf(a.upload(task, encodeTensors(nan), 1))).toBe('CODEC_NON_FINITE');
    const inf = filled(manifest, 0.5);
    inf[0].data[3] = Infinity;
    expect(await codeOf(a.upload(task, encodeTensors(inf), 1))).toBe('CODEC_NON_FINITE');
    expect(await codeOf(a.upload(task, good, 1, { hash: 'b'.repeat(64) }))).toBe('TRANSFER_HASH_MISMATCH');
    expect(await codeOf(a.upload(task, good, 0))).toBe('VALIDATION_FAILED');
    await unchanged(hashBefore);

    // A message bigger than socket.io's limit closes only that connection.
    const big = new RawClient(generateIdentity(), coordinator.url);
    await big.connect();
    const closed = new Promise<string>((resolve) => big.socket.once('disconnect', (reason) => resolve(reason)));
    big.socket.emit(EVENTS.joinJob, { blob: Buffer.alloc(6 * 1024 * 1024) });
    expect(await closed).toBeTruthy();
    expect((await fetch(`${coordinator.url}/v1/health`)).status).toBe(200);
    await unchanged(hashBefore);

    expect((await a.upload(task, good, 1)).ok).toBe(true);
    expect(await codeOf(a.upload(task, good, 1))).toBe('ROUND_DUPLICATE_UPDATE');
    await unchanged(hashBefore);
    expect((await b.upload(b.tasks[0], encodeTensors(filled(manifest, -0.25)), 3)).ok).toBe(true);

    const done = await coordinator.jobs.waitForJob(jobId);
    expect(done.status).toBe('completed');
    const after = decodeTensors(await coordinator.jobs.modelBytes(jobId, 1));
    // (1 * 0.5 + 3 * -0.25) / 4 = -0.0625 added to every weight.
    after.forEach((t, i) => t.data.forEach((v, j) => expect(v).toBeCloseTo(initial[i].data[j] - 0.0625, 6)));
    const rounds = await coordinator.store.listRounds(jobId);
    expect(rounds).toHaveLength(1);
    expect(rounds[0].participants.sort()).toEqual([a.identity.clientId, b.identity.clientId].sort());
    // Messages for a finished job are refused, and the coordinator still serves.
    expect(await codeOf(a.upload(task, good, 1))).toBe('JOB_NOT_FOUND');
    expect((await fetch(`${coordinator.url}/v1/health`)).status).toBe(200);
  });
});
