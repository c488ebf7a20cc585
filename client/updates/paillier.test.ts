import { generateIdentity } from '../../shared/identity/keyPair';
import { ciphertextsFromBytes, ciphertextWidth, decryptSum } from '../../shared/paillier';
import { JobSpecSchema, type JobSpec, paillierParamsOf } from '../../shared/schemas/jobSpec';
import type { JoinResult, RoundTask } from '../../shared/schemas/messages';
import type { CoordinatorConnection } from '../coordinatorConnection';
import { generateKeyHolderKeys, keyHolderSpecFields, type KeyHolderKeys } from '../keyHolder';
import type { ClientModeContext, TrainedUpdate } from './clientAggregationMode';
import { createPaillierClientMode } from './paillier';

jest.setTimeout(120_000);

const PARAMETERS = 3_000;

describe('paillier client half', () => {
  let keys: KeyHolderKeys;
  let spec: JobSpec;

  beforeAll(async () => {
    keys = await generateKeyHolderKeys(1024);
    spec = JobSpecSchema.parse({
      name: 'paillier-client-half',
      model: { kind: 'builtin', name: 'mlp', hiddenUnits: [4] },
      input: { shape: [2], numClasses: 2 },
      rounds: 1,
      minClients: 2,
      maxClients: 4,
      secureAggregation: 'paillier',
      paillier: { ...keyHolderSpecFields(keys), maxExampleWeight: 32 },
    });
  });

  /** A fake connection that keeps what the half uploads (unit test: the half is what is under test). */
  function contextFor(uploads: Uint8Array[], threads: number): ClientModeContext {
    const joined = {
      jobId: 'job_paillierHalf01',
      spec,
      status: 'running',
      currentRound: 0,
      weightManifest: [{ name: 'w', shape: [PARAMETERS] }],
    } as unknown as JoinResult;
    const connection = {
      submitUpdate: async (_task: RoundTask, payload: Uint8Array) => {
        uploads.push(payload);
      },
    } as unknown as CoordinatorConnection;
    return {
      joined,
      connection,
      identity: generateIdentity(),
      threads,
      warn: () => undefined,
      step: () => undefined,
      stepFailed: () => undefined,
    };
  }

  const task: RoundTask = {
    jobId: 'job_paillierHalf01',
    round: 1,
    attempt: 0,
    config: { localEpochs: 1, batchSize: 32, learningRate: 0.1 } as RoundTask['config'],
    modelHash: '0'.repeat(64),
    modelPath: '/v1/jobs/job_paillierHalf01/model',
    deadline: Date.now() + 60_000,
    chunkBytes: 1 << 20,
  };

  function trained(): TrainedUpdate {
    const delta = Float32Array.from({ length: PARAMETERS }, (_, i) => Math.sin(i) * 0.5);
    return { task, tensors: [], delta, numExamples: 32, metrics: { loss: 0, accuracy: 0 } };
  }

  it('encrypts off the event loop (worker threads), so the socket keeps answering pings during a long encryption', async () => {
    // A half that encrypted in this thread would finish before the loop turned once: a 2048-bit key
    // and a large model then block past socket.io's ping timeout and the coordinator drops the client.
    const uploads: Uint8Array[] = [];
    const session = createPaillierClientMode().open(contextFor(uploads, 1));
    let turns = 0;
    let spinning = true;
    const spin = () => {
      turns++;
      if (spinning) setImmediate(spin);
    };
    setImmediate(spin);
    const turnsAtStart = turns;
    try {
      await session.onTask(task, Promise.resolve(trained()));
    } finally {
      spinning = false;
      session.close();
    }
    expect(uploads).toHaveLength(1);
    expect(turns - turnsAtStart).toBeGreaterThan(0);
  });

  it('uploads ciphertexts that decrypt to the weighted update (the worker path encrypts what the in-thread path does)', async () => {
    const uploads: Uint8Array[] = [];
    const mode = createPaillierClientMode();
    const session = mode.open(contextFor(uploads, 2));
    try {
      await session.onTask(task, Promise.resolve(trained()));
    } finally {
      session.close();
    }
    const inThread = await mode.encrypt(contextFor([], 1), trained());
    if (spec.secureAggregation !== 'paillier') throw new Error('a paillier spec');
    const params = paillierParamsOf({ maxClients: spec.maxClients, paillier: spec.paillier });
    const width = ciphertextWidth(keys.privateKey.publicKey.n);
    const [viaWorkers, viaThread] = await Promise.all(
      [uploads[0], inThread].map((bytes) =>
        decryptSum(keys.privateKey, ciphertextsFromBytes(bytes, width), params, 1, PARAMETERS + 1),
      ),
    );
    expect(Array.from(viaWorkers)).toEqual(Array.from(viaThread));
    // Weighted by 32/32 and quantised: each value within one quantisation step of the delta.
    const delta = trained().delta;
    for (let i = 0; i < PARAMETERS; i += 97) expect(Math.abs(viaWorkers[i] - delta[i])).toBeLessThan(1e-3);
    expect(viaWorkers[PARAMETERS]).toBeCloseTo(1, 3);
  });
});
