/**
 * Packed Paillier end to end over the real sockets: an in-process coordinator on 127.0.0.1, in-process
 * TributaryClients on a small MLP and an in-process KeyHolder (1024-bit keys for speed). Checks that a
 * `paillier` job trains the same round-1 model as an otherwise identical `none` job (within the
 * quantisation bound), that no client's delta reaches the coordinator in the clear, that malformed
 * ciphertext uploads get coded errors and change nothing, and that a job without a key holder fails
 * cleanly with PAILLIER_KEYHOLDER_UNAVAILABLE.
 */
import { KeyHolder, generateKeyHolderKeys, keyHolderSpecFields, type KeyHolderKeys } from '../client/keyHolder';
import { TributaryClient } from '../client/tributaryClient';
import { paillierClientMode } from '../client/updates/paillier';
import { startCoordinator, type Coordinator } from '../coordinator/server';
import type { Dataset } from '../shared/data/dataset';
import { generateIdentity } from '../shared/identity/keyPair';
import { ciphertextCount, ciphertextWidth, sumErrorBound } from '../shared/paillier';
import { paillierParamsOf, JobSpecSchema, type JobSpecInput } from '../shared/schemas/jobSpec';
import type { RoundTask } from '../shared/schemas/messages';
import { codeOfAsync } from './support/codeOf';
import { recordReceivedPackets } from './support/packetRecorder';
import { separableDataset } from './support/syntheticCsv';
import { compareRoundOne, connectionOf } from './support/secureRounds';
import { createJob } from './support/rest';

jest.setTimeout(300_000);

const FEATURES = 8;
const SIZES = [120, 160, 90, 200];
const MAX_EXAMPLE_WEIGHT = 1000;
const PARAMETERS = FEATURES * 16 + 16 + 16 * 2 + 2;

const separable = (count: number, seed: number): Dataset => separableDataset(count, FEATURES, seed);
const DATASETS = SIZES.map((n, i) => separable(n, 11 + i));

let keys: KeyHolderKeys;

function spec(
  mode: 'none' | 'paillier',
  overrides: Partial<JobSpecInput> = {},
  paillier: Record<string, unknown> = {},
): JobSpecInput {
  return {
    name: `paillier-e2e-${mode}`,
    model: { kind: 'builtin', name: 'mlp', hiddenUnits: [16] },
    input: { shape: [FEATURES], numClasses: 2 },
    rounds: 2,
    minClients: 4,
    maxClients: 8,
    localEpochs: 1,
    batchSize: 16,
    learningRate: 0.1,
    roundDeadlineMs: 120_000,
    quorumTimeoutMs: 120_000,
    maxRoundRetries: 1,
    seed: 5,
    secureAggregation: mode,
    ...(mode === 'paillier'
      ? {
          paillier: {
            ...keyHolderSpecFields(keys),
            maxExampleWeight: MAX_EXAMPLE_WEIGHT,
            decryptTimeoutMs: 20_000,
            ...paillier,
          },
        }
      : {}),
    ...overrides,
  } as JobSpecInput;
}

describe('secure aggregation (packed Paillier) end to end', () => {
  let coordinator: Coordinator;
  const clients: TributaryClient[] = [];
  const holders: KeyHolder[] = [];
  const received: Buffer[] = [];
  const receivedText: string[] = [];
  // Each client's plaintext delta, weighted vector and encrypted payload, captured inside the client.
  const captured: Array<{ delta: Float32Array; weighted: Float32Array; payload: Uint8Array }> = [];
  const originalEncrypt = paillierClientMode.encrypt;
  // A client's upload waits for its gate (so attacks can go first), by client id.
  const gates = new Map<string, Promise<unknown>>();

  beforeAll(async () => {
    keys = await generateKeyHolderKeys(1024);
    paillierClientMode.encrypt = async (context, trained) => {
      await gates.get(context.identity.clientId);
      const payload = await originalEncrypt(context, trained);
      const { delta, numExamples } = trained;
      const ratio = Math.min(numExamples, MAX_EXAMPLE_WEIGHT) / MAX_EXAMPLE_WEIGHT;
      const weighted = new Float32Array(delta.length);
      for (let i = 0; i < delta.length; i++) weighted[i] = delta[i] * ratio;
      captured.push({ delta: Float32Array.from(delta), weighted, payload });
      return payload;
    };
    coordinator = await startCoordinator({ port: 0, logLevel: 'error' });
    // Every packet the coordinator's socket.io engine receives, already unmasked and decoded.
    recordReceivedPackets(coordinator.io, { binary: received, text: receivedText });
  });

  afterAll(async () => {
    paillierClientMode.encrypt = originalEncrypt;
    for (const c of clients) c.close();
    for (const h of holders) h.close();
    await coordinator?.close();
  });

  function startClients(
    jobId: string,
    count = DATASETS.length,
    setup: (client: TributaryClient, index: number) => void = () => undefined,
  ): TributaryClient[] {
    return DATASETS.slice(0, count).map((dataset, i) => {
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

  async function startKeyHolder(jobId: string): Promise<KeyHolder> {
    const holder = new KeyHolder({ url: coordinator.url, jobId, keys });
    holders.push(holder);
    const joined = new Promise((resolve) => holder.once('joined', resolve));
    holder.run().catch(() => undefined);
    await joined;
    return holder;
  }

  it('validates paillier options eagerly', async () => {
    const post = (body: JobSpecInput) => createJob(coordinator.url, body).catch((e: unknown) => e);
    const missing = spec('paillier');
    delete (missing as { paillier?: unknown }).paillier;
    for (const body of [
      missing,
      spec('paillier', { minClients: 1 }),
      spec('paillier', {}, { publicKey: { n: 'ff' } }),
      spec('paillier', {}, { clipRange: 0.5 }),
      spec('paillier', {}, { publicKey: { n: keyHolderSpecFields(keys).publicKey.n.replace(/.$/, 'e') } }),
    ]) {
      expect(await post(body)).toMatchObject({ code: 'JOB_SPEC_INVALID', status: 400 });
    }
    const parsed = JobSpecSchema.parse(spec('paillier'));
    expect(parsed.secureAggregation === 'paillier' && parsed.paillier).toMatchObject({ bits: 16, clipRange: 1 });
  });

  it('trains the same round-1 model as plaintext FedAvg (within the quantisation bound); malformed ciphertexts change nothing', async () => {
    const plainId = await createJob(coordinator.url, spec('none'));
    startClients(plainId);
    const plain = await coordinator.jobs.waitForJob(plainId);
    expect(plain.status).toBe('completed');
    // The plaintext job uploaded the same deltas in the clear: record only the paillier job's traffic.
    received.length = 0;
    receivedText.length = 0;

    const secureId = await createJob(coordinator.url, spec('paillier'));
    await startKeyHolder(secureId);
    const parsedSpec = JobSpecSchema.parse(spec('paillier'));
    if (parsedSpec.secureAggregation !== 'paillier') throw new Error('expected a paillier spec');
    const params = paillierParamsOf(parsedSpec);
    const width = ciphertextWidth(keys.privateKey.publicKey.n);
    const count = ciphertextCount(params, PARAMETERS + 1);
    const attacks: Array<Promise<string | undefined>> = [];
    startClients(secureId, DATASETS.length, (client, i) => {
      if (i !== 0) return;
      let openGate!: () => void;
      gates.set(client.clientId, new Promise<void>((resolve) => (openGate = resolve)));
      client.once('joined', () => {
        const conn = connectionOf(client)!;
        attacks.push(codeOfAsync(() => conn.joinAsKeyHolder(secureId)));
        conn.once('task', (task: RoundTask) => {
          const run = async () => {
            // 1. One ciphertext short.
            const short = await codeOfAsync(() =>
              conn.submitUpdate(task, new Uint8Array((count - 1) * width).fill(1), 1, {}),
            );
            // 2. The right length, every value >= n².
            const big = await codeOfAsync(() =>
              conn.submitUpdate(task, new Uint8Array(count * width).fill(0xff), 1, {}),
            );
            return [short, big];
          };
          const both = run().finally(() => openGate());
          attacks.push(
            both.then((c) => c[0]),
            both.then((c) => c[1]),
          );
        });
      });
    });
    const secure = await coordinator.jobs.waitForJob(secureId);
    expect(secure.status).toBe('completed');
    expect(await Promise.all(attacks)).toEqual([
      'PAILLIER_NOT_KEY_HOLDER',
      'PAILLIER_CIPHERTEXT_INVALID',
      'PAILLIER_CIPHERTEXT_INVALID',
    ]);

    const secureRounds = (await coordinator.store.listRounds(secureId)).filter((r) => r.status === 'completed');
    const plainRounds = (await coordinator.store.listRounds(plainId)).filter((r) => r.status === 'completed');
    expect(secureRounds.map((r) => r.round)).toEqual([1, 2]);
    for (const r of secureRounds) {
      expect(r.participants).toHaveLength(4);
      expect(r.failures).toEqual([]);
      expect(Object.keys(r.metrics).filter((k) => k.startsWith('train_'))).toEqual([]);
    }
    expect(secureRounds[0].metrics.numExamples).toBe(SIZES.reduce((a, b) => a + b, 0));

    const { meanAbs, worst } = await compareRoundOne(coordinator.store, plainId, secureId);
    const k = SIZES.length;
    const weightSum = SIZES.reduce((a, n) => a + Math.min(n, MAX_EXAMPLE_WEIGHT), 0) / MAX_EXAMPLE_WEIGHT;
    // Each decrypted sum (weighted deltas and Σ ratio) is within E of the exact one (plus Float32 rounding of the sums):
    // |S'/W' - S/W| <= E (1 + max|S/W|) / (W - E).
    const e = sumErrorBound(params, k) + k * params.clipRange * 2 ** -23;
    const bound = (e * (1 + meanAbs)) / (weightSum - e);
    expect(worst).toBeLessThanOrEqual(bound);
    // eslint-disable-next-line no-console
    console.log(
      `Paillier e2e: largest |paillier - none| ${worst.toExponential(2)} (bound ${bound.toExponential(2)}, largest |mean delta| ${meanAbs.toExponential(2)}); ` +
        `round ms none ${plainRounds.map((r) => r.metrics.durationMs).join('/')}, paillier ${secureRounds.map((r) => r.metrics.durationMs).join('/')}`,
    );
  });

  it("never lets a client's delta reach the coordinator in the clear", () => {
    expect(captured.length).toBeGreaterThanOrEqual(8);
    const all = Buffer.concat(received);
    for (const { delta, weighted, payload } of captured) {
      // The ciphertexts did arrive (the recording works) ...
      expect(all.indexOf(Buffer.from(payload.subarray(0, 64)))).toBeGreaterThanOrEqual(0);
      // ... and no 64-byte window of the delta or the weighted delta did, at a few offsets.
      for (const v of [delta, weighted]) {
        const plain = Buffer.from(v.buffer, v.byteOffset, v.byteLength);
        for (const at of [0, 256, plain.length - 64]) expect(all.indexOf(plain.subarray(at, at + 64))).toBe(-1);
        const b64 = plain.subarray(0, 48).toString('base64');
        for (const t of receivedText) expect(t.includes(b64)).toBe(false);
      }
    }
  });

  it('fails the attempt with PAILLIER_KEYHOLDER_UNAVAILABLE when no key holder is connected, and the job fails cleanly', async () => {
    const jobId = await createJob(
      coordinator.url,
      spec(
        'paillier',
        { minClients: 2, rounds: 1, maxRoundRetries: 1, name: 'paillier-no-keyholder' },
        { decryptTimeoutMs: 300 },
      ),
    );
    startClients(jobId, 2);
    const job = await coordinator.jobs.waitForJob(jobId);
    expect(job.status).toBe('failed');
    expect(job.failureReason).toMatch(/PAILLIER_KEYHOLDER_UNAVAILABLE/);
    const rounds = await coordinator.store.listRounds(jobId);
    expect(rounds).toHaveLength(2);
    for (const r of rounds) {
      expect(r.status).toBe('failed');
      expect(r.failureReason).toMatch(/^PAILLIER_KEYHOLDER_UNAVAILABLE: No key holder/);
      expect(r.participants).toHaveLength(2);
    }
    expect(await coordinator.store.loadCheckpoint(jobId, 1)).toBeNull();
  });
});
