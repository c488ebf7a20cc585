/**
 * SecAgg+ end to end over the real sockets: an in-process coordinator on 127.0.0.1 and in-process
 * TributaryClients on a small MLP. Checks that a `secagg` job trains the same round-1 model as an
 * otherwise identical `none` job (within the quantisation bound), that a client dropping after
 * share-keys still yields a committed round of the others' aggregate, that no client's quantised
 * update reaches the coordinator in the clear, and that replayed or malformed replies get coded
 * errors and change nothing.
 */
import { TributaryClient } from '../client/tributaryClient';
import { startCoordinator, type Coordinator } from '../coordinator/server';
import { encodeBinaryJson, decodeBinaryJson } from '../shared/codec/binaryJson';
import type { Dataset } from '../shared/data/dataset';
import { generateIdentity } from '../shared/identity/keyPair';
import type { JobSpecInput } from '../shared/schemas/jobSpec';
import type { Ack, SecAggRequest } from '../shared/schemas/messages';
import { EVENTS } from '../shared/schemas/protocol';
import type { SecAggReplyBody, SignedMessage } from '../shared/schemas/messages';
import { SecAggPlusClient, vectorToBytes, weightedMeanErrorBound, type ClientToServer } from '../shared/secagg';
import { recordReceivedPackets } from './support/packetRecorder';
import { separableDataset } from './support/syntheticCsv';
import { compareRoundOne, connectionOf, connectionOfLater } from './support/secureRounds';
import { createJob } from './support/rest';

/** The coordinator's chunk size here: small, so masked vectors of a 100k-parameter model travel in parts. */
const CHUNK_BYTES = 64 * 1024;

jest.setTimeout(300_000);

const FEATURES = 8;
const SIZES = [120, 160, 90, 200];
const MAX_EXAMPLE_WEIGHT = 1000;

const separable = (count: number, seed: number): Dataset => separableDataset(count, FEATURES, seed);
const DATASETS = SIZES.map((n, i) => separable(n, 11 + i));

function spec(mode: 'none' | 'secagg', overrides: Partial<JobSpecInput> = {}): JobSpecInput {
  return {
    name: `secagg-e2e-${mode}`,
    model: { kind: 'builtin', name: 'mlp', hiddenUnits: [16] },
    input: { shape: [FEATURES], numClasses: 2 },
    rounds: 2,
    minClients: 4,
    localEpochs: 1,
    batchSize: 16,
    learningRate: 0.1,
    roundDeadlineMs: 120_000,
    quorumTimeoutMs: 120_000,
    maxRoundRetries: 1,
    seed: 5,
    secureAggregation: mode,
    ...(mode === 'secagg' ? { secagg: { stageTimeoutMs: 30_000, maxExampleWeight: MAX_EXAMPLE_WEIGHT } } : {}),
    ...overrides,
  };
}

describe('secure aggregation (SecAgg+) end to end', () => {
  let coordinator: Coordinator;
  const clients: TributaryClient[] = [];
  const received: Buffer[] = [];
  const receivedText: string[] = [];
  // Every client's quantised input and masked output, captured inside the client process.
  const quantisedInputs: Uint32Array[] = [];
  const maskedOutputs: Uint8Array[] = [];
  const originalHandle = SecAggPlusClient.prototype.handle;

  beforeAll(async () => {
    SecAggPlusClient.prototype.handle = async function (
      this: SecAggPlusClient,
      message: unknown,
      input?: Uint32Array,
    ): Promise<ClientToServer> {
      const reply = await originalHandle.call(this, message, input);
      if (input && reply.stage === 'collect-masked-vectors') {
        quantisedInputs.push(Uint32Array.from(input));
        maskedOutputs.push(reply.maskedVector);
      }
      return reply;
    };
    coordinator = await startCoordinator({ port: 0, logLevel: 'error', chunkBytes: CHUNK_BYTES });
    // Every packet the coordinator's socket.io engine receives, already unmasked and decoded.
    recordReceivedPackets(coordinator.io, { binary: received, text: receivedText });
  });

  afterAll(async () => {
    SecAggPlusClient.prototype.handle = originalHandle;
    for (const c of clients) c.close();
    await coordinator?.close();
  });

  function startClients(
    jobId: string,
    setup: (client: TributaryClient, index: number) => void = () => undefined,
    datasets = DATASETS,
  ): TributaryClient[] {
    return datasets.map((dataset, i) => {
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

  it('rejects secagg jobs with fewer than 3 clients', async () => {
    const error = await createJob(coordinator.url, spec('secagg', { minClients: 2 })).catch((e: Error) => e);
    expect(error).toMatchObject({ code: 'JOB_SPEC_INVALID', status: 400 });
    expect((error as Error).message).toMatch(/minClients >= 3/);
  });

  it('aggregates a model larger than one message chunk from masked vectors sent in parts', async () => {
    // 8 -> 4,096 -> 16 -> 2: 102,450 parameters, a 410 KB masked vector: seven parts of the round's
    // 64 KiB chunk size (the coordinator here uses small chunks so the multi-part path is exercised
    // without a model above the 4 MiB message limit; the parts logic is the same at any chunk size).
    // One batch per client: one training step is enough to move every weight.
    const big: Partial<JobSpecInput> = {
      model: { kind: 'builtin', name: 'mlp', hiddenUnits: [4_096, 16] },
      rounds: 1,
      batchSize: 64,
    };
    const binaryBefore = received.length;
    const plainId = await createJob(coordinator.url, spec('none', big));
    // Few examples each: the point is the size of the update, not the training.
    const small = SIZES.map((_, i) => separable(24 + 4 * i, 31 + i));
    startClients(plainId, undefined, small);
    expect((await coordinator.jobs.waitForJob(plainId)).status).toBe('completed');
    const secureId = await createJob(coordinator.url, spec('secagg', big));
    startClients(secureId, undefined, small);
    expect((await coordinator.jobs.waitForJob(secureId)).status).toBe('completed');
    const [round] = await coordinator.store.listRounds(secureId);
    expect(round.participants).toHaveLength(4);

    // The parts arrived: binary frames of exactly one chunk (every part but the last) from the secure job.
    const fullParts = received.slice(binaryBefore).filter((b) => b.length === CHUNK_BYTES);
    expect(fullParts.length).toBeGreaterThanOrEqual(4 * 6);

    const { meanAbs, worst } = await compareRoundOne(coordinator.store, plainId, secureId);
    const weightSum = small.reduce((a, d) => a + Math.min(d.count, MAX_EXAMPLE_WEIGHT), 0) / MAX_EXAMPLE_WEIGHT;
    expect(worst).toBeLessThanOrEqual(
      weightedMeanErrorBound(meanAbs, weightSum, 4, { clippingRange: 8, quantizationRange: 2 ** 22 }),
    );
  });

  it('trains the same round-1 model as plaintext FedAvg (within the quantisation bound); replays and malformed replies change nothing', async () => {
    const plainId = await createJob(coordinator.url, spec('none'));
    startClients(plainId);
    const plain = await coordinator.jobs.waitForJob(plainId);
    expect(plain.status).toBe('completed');

    const secureId = await createJob(coordinator.url, spec('secagg'));
    const attacks: Array<Promise<Ack>> = [];
    startClients(secureId, (client, i) => {
      if (i !== 0) return;
      let setupReply: unknown;
      client.on('modeStep', (r) => {
        const conn = connectionOf(client)!;
        if (r.round !== 1) return;
        if (r.stage === 'setup') {
          conn.socket.onAnyOutgoing((event: string, message: unknown) => {
            if (event === EVENTS.secaggReply && setupReply === undefined) setupReply = message;
          });
        }
        if (r.stage !== 'share-keys') return;
        const send = (body: unknown, data?: Uint8Array) =>
          conn.send('secaggReply', secureId, 1, body as SecAggReplyBody, data).then(
            (): Ack => ({ ok: true }),
            (e: { code: string; message: string }): Ack => ({ ok: false, error: { code: e.code, message: e.message } }),
          );
        // 1. The exact setup reply again (same nonce and signature).
        attacks.push(
          conn.socket.timeout(5_000).emitWithAck(EVENTS.secaggReply, setupReply as SignedMessage) as Promise<Ack>,
        );
        // 2. A freshly signed copy of it, now that the stage moved on.
        const setupBody = JSON.parse((setupReply as { body: string }).body) as object;
        attacks.push(send(setupBody));
        // 3. A malformed share-keys reply (bundles is not a list).
        const roundId = `${secureId}:1:${r.attempt}`;
        attacks.push(
          send({
            attempt: r.attempt,
            stage: 'share-keys',
            reply: encodeBinaryJson({ stage: 'share-keys', roundId, clientId: client.clientId, bundles: 'x' }),
          }),
        );
        // 4. A share-keys reply that names another client than the connection's.
        attacks.push(
          send({
            attempt: r.attempt,
            stage: 'share-keys',
            reply: encodeBinaryJson({ stage: 'share-keys', roundId, clientId: 'a'.repeat(64), bundles: [] }),
          }),
        );
        // 5. A reply for another attempt.
        attacks.push(send({ attempt: r.attempt + 7, stage: 'share-keys', reply: '{}' }));
      });
    });
    const secure = await coordinator.jobs.waitForJob(secureId);
    expect(secure.status).toBe('completed');

    const codes = (await Promise.all(attacks)).map((a) => (a.ok ? 'ok' : a.error.code));
    expect(codes).toEqual([
      'AUTH_REPLAY',
      'SECAGG_STAGE_OUT_OF_ORDER',
      'SECAGG_MESSAGE_INVALID',
      'SECAGG_MESSAGE_INVALID',
      'ROUND_WRONG',
    ]);

    const secureRounds = (await coordinator.store.listRounds(secureId)).filter((r) => r.status === 'completed');
    const plainRounds = (await coordinator.store.listRounds(plainId)).filter((r) => r.status === 'completed');
    expect(secureRounds.map((r) => r.round)).toEqual([1, 2]);
    for (const r of secureRounds) {
      expect(r.participants).toHaveLength(4);
      expect(r.failures).toEqual([]);
      // No per-client training metrics in secagg mode.
      expect(Object.keys(r.metrics).filter((k) => k.startsWith('train_'))).toEqual([]);
    }
    expect(secureRounds[0].metrics.numExamples).toBe(SIZES.reduce((a, b) => a + b, 0));

    const { meanAbs, worst } = await compareRoundOne(coordinator.store, plainId, secureId);
    const weightSum = SIZES.reduce((a, n) => a + Math.min(n, MAX_EXAMPLE_WEIGHT), 0) / MAX_EXAMPLE_WEIGHT;
    const bound = weightedMeanErrorBound(meanAbs, weightSum, 4, { clippingRange: 8, quantizationRange: 2 ** 22 });
    expect(worst).toBeLessThanOrEqual(bound);
    // eslint-disable-next-line no-console
    console.log(
      `SecAgg+ e2e: largest |secagg - none| ${worst.toExponential(2)} (bound ${bound.toExponential(2)}, largest |mean delta| ${meanAbs.toExponential(2)}); ` +
        `round ms none ${plainRounds.map((r) => r.metrics.durationMs).join('/')}, secagg ${secureRounds.map((r) => r.metrics.durationMs).join('/')}`,
    );
  });

  it("never lets a client's quantised update reach the coordinator in the clear", () => {
    expect(quantisedInputs.length).toBeGreaterThanOrEqual(8);
    const all = Buffer.concat(received);
    for (let i = 0; i < quantisedInputs.length; i++) {
      const plain = Buffer.from(vectorToBytes(quantisedInputs[i]));
      const masked = Buffer.from(maskedOutputs[i]);
      expect(masked.equals(plain)).toBe(false);
      // The masked vector did arrive (the recording works) ...
      expect(all.indexOf(masked.subarray(0, 64))).toBeGreaterThanOrEqual(0);
      // ... and no 64-byte window of the quantised input did, at any of a few offsets.
      for (const at of [0, 256, plain.length - 64]) expect(all.indexOf(plain.subarray(at, at + 64))).toBe(-1);
      // Nor its base64 in any text frame.
      const b64 = plain.subarray(0, 48).toString('base64');
      for (const t of receivedText) expect(t.includes(b64)).toBe(false);
    }
  });

  it("commits a round with the other clients' aggregate when one client disconnects after share-keys", async () => {
    const jobId = await createJob(
      coordinator.url,
      spec('secagg', { minClients: 3, rounds: 3, name: 'secagg-e2e-dropout' }),
    );
    let dropped: string | undefined;
    startClients(jobId, (client, i) => {
      if (i !== 1) return;
      let fullRound: string | undefined;
      // Drop only from an attempt where all four were selected (round 1 may start with three).
      connectionOfLater(client, (conn) =>
        conn.socket.on(EVENTS.secaggRequest, (req: SecAggRequest) => {
          if (
            req.stage === 'setup' &&
            (decodeBinaryJson(req.payload) as { clientIds: string[] }).clientIds.length === 4
          )
            fullRound = `${req.round}:${req.attempt}`;
        }),
      );
      client.on('modeStep', (r) => {
        if (r.stage === 'collect-masked-vectors' && fullRound === `${r.round}:${r.attempt}` && !dropped) {
          dropped = client.clientId;
          client.close();
        }
      });
    });
    const job = await coordinator.jobs.waitForJob(jobId);
    expect(job.status).toBe('completed');
    expect(dropped).toBeDefined();
    const rounds = await coordinator.store.listRounds(jobId);
    const withDrop = rounds.find((r) => r.selected.includes(dropped!) && r.selected.length === 4);
    expect(withDrop?.status).toBe('completed');
    expect(withDrop!.participants).toHaveLength(3);
    expect(withDrop!.participants).not.toContain(dropped);
    expect(withDrop!.failures.map((f) => f.clientId)).toEqual([dropped]);
    expect(withDrop!.failures[0].reason).toMatch(/collect-masked-vectors/);
    expect(rounds.filter((r) => r.status === 'completed').map((r) => r.round)).toEqual([1, 2, 3]);
  });
});

/** Calls `f` with the client's connection once run() has created it. */
