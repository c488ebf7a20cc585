/**
 * Packed lattice HE (`he`, BGV by default) end to end over the real sockets: an in-process coordinator on 127.0.0.1,
 * in-process TributaryClients on a small MLP and an in-process HeKeyHolder. Checks that an `he` job
 * trains the same round-1 model as an otherwise identical `none` job (within the quantisation bound),
 * that no client's delta reaches the coordinator in the clear, that malformed or badly signed uploads
 * get coded errors and change nothing, that a provider cannot pose as the key holder, and that a job
 * without a key holder fails cleanly with HE_KEYHOLDER_UNAVAILABLE.
 */
import { createHeMode } from '../coordinator/aggregation/he/heMode';
import {
  generateHeKeyHolderKeys,
  HeKeyHolder,
  type HeKeyHolderKeys,
  heKeyHolderSpecFields,
} from '../client/heKeyHolder';
import { TributaryClient } from '../client/tributaryClient';
import { heClientMode } from '../client/updates/he';
import { startCoordinator, type Coordinator } from '../coordinator/server';
import type { Dataset } from '../shared/data/dataset';
import { HE_PARAMETER_SETS, heCiphertextCount, heSumErrorBound, SIGNATURE_BYTES } from '../shared/he';
import { generateIdentity } from '../shared/identity/keyPair';
import { heParamsOf, JobSpecSchema, type JobSpecInput } from '../shared/schemas/jobSpec';
import type { RoundTask } from '../shared/schemas/messages';
import { codeOfAsync } from './support/codeOf';
import { recordReceivedPackets } from './support/packetRecorder';
import { createJob } from './support/rest';
import { compareRoundOne, connectionOf, roundModel } from './support/secureRounds';
import { separableDataset } from './support/syntheticCsv';

jest.setTimeout(300_000);

const FEATURES = 8;
const SIZES = [120, 160, 90, 200];
const MAX_EXAMPLE_WEIGHT = 1000;
const PARAMETERS = FEATURES * 16 + 16 + 16 * 2 + 2;
const SET = HE_PARAMETER_SETS['bgv-4096'];

const separable = (count: number, seed: number): Dataset => separableDataset(count, FEATURES, seed);
const DATASETS = SIZES.map((n, i) => separable(n, 11 + i));

let keys: HeKeyHolderKeys;

function spec(
  mode: 'none' | 'he',
  overrides: Partial<JobSpecInput> = {},
  he: Record<string, unknown> = {},
): JobSpecInput {
  return {
    name: `he-e2e-${mode}`,
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
    ...(mode === 'he'
      ? {
          he: { ...heKeyHolderSpecFields(keys), maxExampleWeight: MAX_EXAMPLE_WEIGHT, decryptTimeoutMs: 30_000, ...he },
        }
      : { none: { maxExampleWeight: MAX_EXAMPLE_WEIGHT } }),
    ...overrides,
  } as JobSpecInput;
}

describe('secure aggregation (packed BGV/BFV) end to end', () => {
  let coordinator: Coordinator;
  const clients: TributaryClient[] = [];
  const holders: HeKeyHolder[] = [];
  const received: Buffer[] = [];
  const receivedText: string[] = [];
  // Each client's plaintext delta, weighted vector and upload, captured inside the client.
  const captured: Array<{ delta: Float32Array; weighted: Float32Array; payload: Uint8Array }> = [];
  const originalEncrypt = heClientMode.encrypt;
  // A client's upload waits for its gate (so attacks can go first), by client id.
  const gates = new Map<string, Promise<unknown>>();

  beforeAll(async () => {
    keys = await generateHeKeyHolderKeys();
    heClientMode.encrypt = async (context, trained) => {
      await gates.get(context.identity.clientId);
      const upload = await originalEncrypt(context, trained);
      const payload = upload.bytes;
      const { delta, numExamples } = trained;
      const ratio = Math.min(numExamples, MAX_EXAMPLE_WEIGHT) / MAX_EXAMPLE_WEIGHT;
      const weighted = new Float32Array(delta.length);
      for (let i = 0; i < delta.length; i++) weighted[i] = delta[i] * ratio;
      captured.push({ delta: Float32Array.from(delta), weighted, payload });
      return upload;
    };
    coordinator = await startCoordinator({ port: 0, logLevel: 'error' });
    recordReceivedPackets(coordinator.io, { binary: received, text: receivedText });
  });

  afterAll(async () => {
    heClientMode.encrypt = originalEncrypt;
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

  async function startKeyHolder(jobId: string): Promise<HeKeyHolder> {
    const holder = new HeKeyHolder({ url: coordinator.url, jobId, keys });
    holders.push(holder);
    const joined = new Promise((resolve) => holder.once('joined', resolve));
    holder.run().catch(() => undefined);
    await joined;
    return holder;
  }

  it('validates he options eagerly', async () => {
    const post = (body: JobSpecInput) => createJob(coordinator.url, body).catch((e: unknown) => e);
    const missing = spec('he');
    delete (missing as { he?: unknown }).he;
    const key = heKeyHolderSpecFields(keys).publicKey;
    const flipped = Buffer.from(key, 'base64');
    flipped[20] ^= 1; // the parms_id: a key of other parameters
    for (const body of [
      missing,
      spec('he', { minClients: 1 }),
      spec('he', {}, { publicKey: key.slice(4) }),
      spec('he', {}, { publicKey: flipped.toString('base64') }),
      spec('he', {}, { parameterSet: 'bfv-2048' }),
      spec('he', {}, { parameterSet: 'bfv-4096' }), // a BGV key named as a BFV one
      spec('he', {}, { clipRange: 0.5 }),
      spec('he', { maxClients: 2000 }, { bits: 20 }), // 2000 clients of 20-bit values overflow t
    ]) {
      expect(await post(body)).toMatchObject({ code: 'JOB_SPEC_INVALID', status: 400 });
    }
    const parsed = JobSpecSchema.parse(spec('he'));
    expect(parsed.secureAggregation === 'he' && parsed.he).toMatchObject({
      parameterSet: 'bgv-4096',
      bits: 16,
      clipRange: 1,
      keyHolderSums: true, // the key holder adds the signed contributions itself unless told otherwise
    });
    // Contributions travel one message each, so many clients of a 100k-parameter model fit (1024 ×
    // 1.64 MB was refused when they travelled in one message); one update still has to fit a message.
    const many = JobSpecSchema.parse(spec('he', { maxClients: 1024 }));
    expect(() => createHeMode().assertModelFits(many, 100_000)).not.toThrow();
    expect(() => createHeMode().assertModelFits(many, 1_048_576)).toThrow(/at most 1048575 parameters/);
  });

  it('trains the same round-1 model as plaintext FedAvg (within the quantisation bound); bad uploads change nothing', async () => {
    const plainId = await createJob(coordinator.url, spec('none'));
    startClients(plainId);
    const plain = await coordinator.jobs.waitForJob(plainId);
    expect(plain.status).toBe('completed');
    // The plaintext job uploaded the same deltas in the clear: record only the he job's traffic.
    received.length = 0;
    receivedText.length = 0;

    const secureId = await createJob(coordinator.url, spec('he'));
    await startKeyHolder(secureId);
    const count = heCiphertextCount(SET, PARAMETERS + 1);
    const uploadBytes = count * SET.ciphertextBytes + SIGNATURE_BYTES;
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
            // 1. One byte short.
            const short = await codeOfAsync(() => conn.submitUpdate(task, new Uint8Array(uploadBytes - 1), 1, {}));
            // 2. The right length, but garbage: the signature does not verify.
            const garbage = await codeOfAsync(() =>
              conn.submitUpdate(task, new Uint8Array(uploadBytes).fill(0xab), 1, {}),
            );
            // 3. Another client's real upload, replayed under this client's name.
            const stolen = await new Promise<Uint8Array>((resolve) => {
              const poll = setInterval(() => {
                const other = captured.find((c) => c.payload.length === uploadBytes);
                if (other) {
                  clearInterval(poll);
                  resolve(other.payload);
                }
              }, 50);
            });
            const replayed = await codeOfAsync(() => conn.submitUpdate(task, stolen, 1, {}));
            return [short, garbage, replayed];
          };
          const all = run().finally(() => openGate());
          attacks.push(...[0, 1, 2].map((k) => all.then((c) => c[k])));
        });
      });
    });
    const secure = await coordinator.jobs.waitForJob(secureId);
    expect([secure.status, secure.failureReason]).toEqual(['completed', undefined]);
    expect(await Promise.all(attacks)).toEqual([
      'HE_NOT_KEY_HOLDER',
      'HE_CIPHERTEXT_INVALID',
      'HE_SUBMISSION_INVALID',
      'HE_SUBMISSION_INVALID',
    ]);

    const secureRounds = (await coordinator.store.listRounds(secureId)).filter((r) => r.status === 'completed');
    const plainRounds = (await coordinator.store.listRounds(plainId)).filter((r) => r.status === 'completed');
    expect(secureRounds.map((r) => r.round)).toEqual([1, 2]);
    for (const r of secureRounds) {
      expect(r.participants).toHaveLength(4);
      expect(r.failures).toEqual([]);
      expect(Object.keys(r.metrics).filter((k) => k.startsWith('train_'))).toEqual([]);
    }
    expect(secureRounds[0].metrics.numExamples).toBeCloseTo(
      SIZES.reduce((a, b) => a + b, 0),
      1,
    );

    const { meanAbs, worst } = await compareRoundOne(coordinator.store, plainId, secureId);
    const parsed = JobSpecSchema.parse(spec('he'));
    if (parsed.secureAggregation !== 'he') throw new Error('expected an he spec');
    const params = heParamsOf(parsed.he);
    const k = SIZES.length;
    const weightSum = SIZES.reduce((a, n) => a + Math.min(n, MAX_EXAMPLE_WEIGHT), 0) / MAX_EXAMPLE_WEIGHT;
    // Each decrypted sum (weighted deltas and Σ ratio) is within E of the exact one (plus the Float32
    // rounding of the sums): |S'/W' - S/W| <= E (1 + max|S/W|) / (W - E).
    const e = heSumErrorBound(params, k) + k * params.clipRange * 2 ** -23;
    const bound = (e * (1 + meanAbs)) / (weightSum - e);
    expect(worst).toBeLessThanOrEqual(bound);
    // eslint-disable-next-line no-console
    console.log(
      `HE e2e: largest |he - none| ${worst.toExponential(2)} (bound ${bound.toExponential(2)}, largest step ${meanAbs.toExponential(2)}); ` +
        `round ms none ${plainRounds.map((r) => r.metrics.durationMs).join('/')}, he ${secureRounds.map((r) => r.metrics.durationMs).join('/')}`,
    );
  });

  it("with keyHolderSums: false the key holder decrypts the coordinator's sum and the model is the same", async () => {
    const firstHe = (await coordinator.store.listJobs()).find((j) => j.spec.name === 'he-e2e-he');
    if (!firstHe) throw new Error('the he job of the previous test is missing');
    const jobId = await createJob(
      coordinator.url,
      spec('he', { rounds: 1, name: 'he-e2e-coordinator-sum' }, { keyHolderSums: false }),
    );
    const holder = await startKeyHolder(jobId);
    const decrypted = new Promise<{ clientCount: number }>((resolve) => holder.once('decrypted', resolve));
    startClients(jobId);
    const job = await coordinator.jobs.waitForJob(jobId);
    expect(job.status).toBe('completed');
    expect((await decrypted).clientCount).toBe(4);
    // The same quantised updates sum to the same integers, whoever adds the ciphertexts.
    const [mine, theirs] = await Promise.all([
      roundModel(coordinator.store, jobId, 1),
      roundModel(coordinator.store, firstHe.id, 1),
    ]);
    expect(mine.map((t) => [...t.data])).toEqual(theirs.map((t) => [...t.data]));
  });

  it("never lets a client's delta reach the coordinator in the clear", () => {
    expect(captured.length).toBeGreaterThanOrEqual(8);
    const all = Buffer.concat(received);
    for (const { delta, weighted, payload } of captured) {
      // The ciphertexts did arrive (the recording works) ...
      expect(all.indexOf(Buffer.from(payload.subarray(200, 264)))).toBeGreaterThanOrEqual(0);
      // ... and no 64-byte window of the delta or the weighted delta did, at a few offsets.
      for (const v of [delta, weighted]) {
        const plain = Buffer.from(v.buffer, v.byteOffset, v.byteLength);
        for (const at of [0, 256, plain.length - 64]) expect(all.indexOf(plain.subarray(at, at + 64))).toBe(-1);
        const b64 = plain.subarray(0, 48).toString('base64');
        for (const t of receivedText) expect(t.includes(b64)).toBe(false);
      }
    }
  });

  it('fails the attempt with HE_KEYHOLDER_UNAVAILABLE when no key holder is connected, and the job fails cleanly', async () => {
    const jobId = await createJob(
      coordinator.url,
      spec('he', { minClients: 2, rounds: 1, maxRoundRetries: 1, name: 'he-no-keyholder' }, { decryptTimeoutMs: 300 }),
    );
    startClients(jobId, 2);
    const job = await coordinator.jobs.waitForJob(jobId);
    expect(job.status).toBe('failed');
    expect(job.failureReason).toMatch(/HE_KEYHOLDER_UNAVAILABLE/);
    const rounds = await coordinator.store.listRounds(jobId);
    expect(rounds).toHaveLength(2);
    for (const r of rounds) {
      expect(r.status).toBe('failed');
      expect(r.failureReason).toMatch(/^HE_KEYHOLDER_UNAVAILABLE: No HE key holder/);
      expect(r.participants).toHaveLength(2);
    }
    expect(await coordinator.store.loadCheckpoint(jobId, 1)).toBeNull();
  });
});
