import { createHash } from 'node:crypto';
import { TributaryError } from '../errors';
import { type CollectMaskedVectorsReply, vectorBytesView } from './messages';
import type { SignedSeed } from './masks';
import { type MaskSumSource, type SignatureBatchVerifier, SecAggWorkerPool } from './secaggWorkers';
import type { ClientId } from './neighbours';
import { quantize } from './quantize';
import { SecAggPlusServer } from './serverProtocol';
import type { SecAggStage } from './stages';
import { makeClient, makeIdentities, policyOf, runInMemoryRound } from './testHarness';

// The client's randomness (its X25519 key pairs and self-mask seed) from a counter, so a round can be
// replayed with the same secrets: the worker path and the in-thread path must then send the same bytes.
let draws = 0;
jest.mock('./keys', () => {
  const actual = jest.requireActual('./keys');
  const next = (): Uint8Array => new Uint8Array(createHash('sha256').update(`draw:${draws++}`).digest());
  return {
    ...actual,
    randomSeed: () => next(),
    generateKeyPair: () => {
      const secretKey = next();
      return { secretKey, publicKey: actual.publicKeyOf(secretKey), privateKey: actual.x25519PrivateKey(secretKey) };
    },
  };
});

jest.setTimeout(120_000);

/** Wraps a source and keeps every sum it hands out (to check what becomes of them). */
class RecordingMaskSums implements MaskSumSource {
  readonly sums: Uint32Array[] = [];
  constructor(private readonly inner: MaskSumSource) {}
  async maskSum(masks: readonly SignedSeed[], length: number): Promise<Uint32Array> {
    const sum = await this.inner.maskSum(masks, length);
    this.sums.push(sum);
    return sum;
  }
}

/** A pool whose every call fails as a crashed worker's does. */
const crashedPool: MaskSumSource & SignatureBatchVerifier = {
  maskSum: async () => {
    throw new TributaryError('SECAGG_MASK_WORKER_FAILED', 'SecAgg+: a mask thread exited with code 1');
  },
  verifyAll: async () => {
    throw new TributaryError('SECAGG_MASK_WORKER_FAILED', 'SecAgg+: a mask thread exited with code 1');
  },
};

const pool = new SecAggWorkerPool(2);
afterAll(() => pool.close());

const n = 7; // k = 6, t = 4
const L = 70_001; // more than one of the worker's keystream chunks
const identities = makeIdentities(n, 'precompute');
const ids = [...identities.keys()];
const inputs = new Map(
  ids.map((id, c) => [id, quantize(Float32Array.from({ length: L }, (_, i) => Math.sin(i * (c + 1)) * 3)).values]),
);
const options = { roundId: 'job9:3:0', clientIds: ids, vectorLength: L, graphSeed: 'pre' };

function plainSum(vs: Iterable<Uint32Array>): Uint32Array {
  const out = new Uint32Array(L);
  for (const v of vs) for (let i = 0; i < L; i++) out[i] = out[i] + v[i];
  return out;
}

/** Runs the round from the same secrets (draw 0) and returns each client's masked vector bytes and the result. */
async function run(maskSums: MaskSumSource | undefined, dropAt = new Map<ClientId, SecAggStage>()) {
  draws = 0;
  const masked = new Map<ClientId, Buffer>();
  const round = await runInMemoryRound(
    options,
    identities,
    inputs,
    dropAt,
    (stage, id, reply) => {
      if (stage === 'collect-masked-vectors')
        masked.set(id, Buffer.from((reply as CollectMaskedVectorsReply).maskedVector));
    },
    undefined,
    maskSums ? { maskSums, signatures: maskSums === crashedPool ? crashedPool : pool } : {},
  );
  // What the client half does with sessions that end (and the only end of those that dropped before masking).
  for (const c of round.clients.values()) c.dispose();
  await new Promise((r) => setImmediate(r));
  return { masked, ...round };
}

/** Waits (bounded) until `recording` handed out `count` sums and their follow-ups ran. */
async function arrived(recording: RecordingMaskSums, count: number): Promise<void> {
  for (let i = 0; i < 400 && recording.sums.length < count; i++) await new Promise((r) => setTimeout(r, 25));
  await new Promise((r) => setImmediate(r));
  expect(recording.sums.length).toBe(count);
}

describe('SecAgg+ masks precomputed in a worker after share-keys', () => {
  it.each([
    ['no dropouts', new Map<ClientId, SecAggStage>()],
    // Keys arrived but no share bundle: the precomputed sum covered them and must take them off again.
    [
      'two dropped at share-keys',
      new Map<ClientId, SecAggStage>([
        [ids[1], 'share-keys'],
        [ids[4], 'share-keys'],
      ]),
    ],
    // Dropped after masking: the server reconstructs their mask keys (unmask stage unchanged).
    [
      'two dropped at collect-masked-vectors',
      new Map<ClientId, SecAggStage>([
        [ids[0], 'collect-masked-vectors'],
        [ids[5], 'collect-masked-vectors'],
      ]),
    ],
  ])('%s: byte-identical masked vectors to the in-thread path, and the sum unmasks', async (_, dropAt) => {
    const inThread = await run(undefined, dropAt);
    const recording = new RecordingMaskSums(pool);
    const worker = await run(recording, dropAt);
    const senders = ids.filter((id) => !dropAt.has(id) || dropAt.get(id) === 'consistency-check');
    expect([...worker.masked.keys()].sort()).toEqual(senders.sort());
    expect(worker.masked.size).toBe(inThread.masked.size);
    for (const [id, bytes] of inThread.masked) expect(worker.masked.get(id)?.equals(bytes)).toBe(true);
    for (const c of worker.clients.values()) if (worker.masked.has(c.clientId)) expect(c.maskPath).toBe('precomputed');
    for (const c of inThread.clients.values()) expect(c.maskPath).toBe('in-thread');
    const survivors = ids.filter((id) => !dropAt.has(id));
    expect(worker.result.contributors).toEqual(survivors);
    expect(Array.from(worker.result.sum)).toEqual(Array.from(plainSum(survivors.map((id) => inputs.get(id)!))));
    // The sums the pool handed out became the masked vectors sent (no pad left elsewhere)...
    const sent = new Set([...worker.masked.values()].map((b) => b.toString('hex')));
    for (const sum of recording.sums) {
      if (sent.has(Buffer.from(vectorBytesView(sum)).toString('hex'))) continue;
      // ...except those of clients that dropped before masking, zeroed when their sessions were disposed.
      expect(sum.every((v) => v === 0)).toBe(true);
    }
    // The masked vectors are not the inputs (the masks are there).
    for (const [id, bytes] of worker.masked)
      expect(bytes.equals(Buffer.from(vectorBytesView(inputs.get(id)!)))).toBe(false);
  });

  it('a crashed worker: the client masks in its own thread (same bytes) and says why', async () => {
    const inThread = await run(undefined);
    const crashed = await run(crashedPool);
    for (const [id, bytes] of inThread.masked) expect(crashed.masked.get(id)?.equals(bytes)).toBe(true);
    for (const c of crashed.clients.values()) {
      expect(c.maskPath).toBe('in-thread-after-worker-failure');
      expect(c.precomputeFailure).toMatchObject({ code: 'SECAGG_MASK_WORKER_FAILED' });
    }
    expect(Array.from(crashed.result.sum)).toEqual(Array.from(plainSum(inputs.values())));
  });

  it("the server's unmask with self masks expanded in the pool (or a crashed one) gives the exact sum", async () => {
    const dropAt = new Map<ClientId, SecAggStage>([[ids[3], 'collect-masked-vectors']]);
    const survivors = ids.filter((id) => !dropAt.has(id));
    const expected = Array.from(plainSum(survivors.map((id) => inputs.get(id)!)));
    const recording = new RecordingMaskSums(pool);
    for (const maskSums of [recording, crashedPool]) {
      const { result } = await runInMemoryRound({ ...options, maskSums }, identities, inputs, dropAt);
      expect(result.contributors).toEqual(survivors);
      expect(Array.from(result.sum)).toEqual(expected);
    }
    // The pool was asked for exactly one sum: the survivors' self masks.
    expect(recording.sums.length).toBe(1);
  });

  /** Drives one client through setup and share-keys against a real server; returns it and the server's next step. */
  async function afterShareKeys(maskSums: MaskSumSource) {
    draws = 0;
    const server = new SecAggPlusServer(options);
    const policy = policyOf(server);
    const clients = new Map(
      ids.map((id) => [id, makeClient(identities.get(id)!, policy, options.roundId, undefined, { maskSums })]),
    );
    let step = server.start();
    for (const stage of ['setup', 'share-keys'] as const) {
      if (step.done || step.stage !== stage) throw new Error(`expected ${stage}`);
      for (const [id, request] of step.requests) server.receive(await clients.get(id)!.handle(request));
      step = await server.advance();
    }
    if (step.done) throw new Error('the round ended early');
    return { clients, step };
  }

  it('an abort at masked input (a forged bundle) zeroes the precomputed sum', async () => {
    const recording = new RecordingMaskSums(pool);
    const { clients, step } = await afterShareKeys(recording);
    const id = ids[2];
    const request = structuredClone(step.requests.get(id)) as { bundles: Array<{ ciphertext: Uint8Array }> };
    request.bundles[0].ciphertext[0] ^= 1;
    await expect(clients.get(id)!.handle(request, inputs.get(id))).rejects.toMatchObject({
      code: 'SECAGG_MESSAGE_INVALID',
    });
    expect(clients.get(id)!.stage).toBe('aborted');
    await arrived(recording, n);
    const zeroed = recording.sums.filter((s) => s.every((v) => v === 0));
    expect(zeroed.length).toBe(1);
    for (const c of clients.values()) c.dispose();
  });

  it('dispose() (a session that will not go on) zeroes a sum still being computed and one already there', async () => {
    const recording = new RecordingMaskSums(pool);
    const { clients } = await afterShareKeys(recording);
    // Some sums may still be in the worker: dispose now, then wait until every one has arrived.
    for (const c of clients.values()) c.dispose();
    await arrived(recording, n);
    for (const sum of recording.sums) {
      expect(sum.length).toBe(L);
      expect(sum.every((v) => v === 0)).toBe(true);
    }
    for (const c of clients.values()) expect(c.stage).toBe('aborted');
  });
});

describe("SecAgg+ neighbours' signatures checked in a worker", () => {
  /** Setup for every client, then the share-keys request of `target` with one peer's key signature forged. */
  async function forgedShareKeys(signatures: SignatureBatchVerifier) {
    const server = new SecAggPlusServer(options);
    const policy = policyOf(server);
    const clients = new Map(
      ids.map((id) => [id, makeClient(identities.get(id)!, policy, options.roundId, undefined, { signatures })]),
    );
    const step = server.start();
    if (step.done) throw new Error('no setup');
    for (const [id, request] of step.requests) server.receive(await clients.get(id)!.handle(request));
    const next = await server.advance();
    if (next.done) throw new Error('the round ended early');
    const target = ids[0];
    const request = structuredClone(next.requests.get(target)) as { peers: Array<{ keySignature: string }> };
    const sig = request.peers[1].keySignature;
    request.peers[1].keySignature = (sig[0] === '0' ? '1' : '0') + sig.slice(1);
    return { client: clients.get(target)!, request };
  }

  it.each([
    ['the pool', () => pool],
    ['a crashed pool (in-thread fallback)', () => crashedPool],
  ])('%s: a forged key signature at share-keys is refused with SECAGG_SIGNATURE_INVALID', async (_, verifier) => {
    const { client, request } = await forgedShareKeys(verifier());
    await expect(client.handle(request)).rejects.toMatchObject({ code: 'SECAGG_SIGNATURE_INVALID' });
    expect(client.stage).toBe('aborted');
  });

  it('a full round with signatures and masks in the pool unmasks the exact sum', async () => {
    const { result } = await runInMemoryRound(options, identities, inputs, new Map(), undefined, undefined, {
      maskSums: pool,
      signatures: pool,
    });
    expect(Array.from(result.sum)).toEqual(Array.from(plainSum(inputs.values())));
  });
});

describe('SecAgg+ survivor-set signatures at unmask checked as one batch in a worker', () => {
  /** Wraps a verifier and records the size of every batch it is asked for. */
  class RecordingVerifier implements SignatureBatchVerifier {
    readonly batches: number[] = [];
    constructor(private readonly inner: SignatureBatchVerifier) {}
    verifyAll(checks: Parameters<SignatureBatchVerifier['verifyAll']>[0]): Promise<boolean[]> {
      this.batches.push(checks.length);
      return this.inner.verifyAll(checks);
    }
  }

  /** Every stage before unmask for every client (signatures checked by `signatures`); the server's unmask step. */
  async function untilUnmask(signatures: SignatureBatchVerifier | undefined) {
    draws = 0;
    const server = new SecAggPlusServer(options);
    const policy = policyOf(server);
    const clients = new Map(
      ids.map((id) => [
        id,
        makeClient(identities.get(id)!, policy, options.roundId, undefined, signatures ? { signatures } : {}),
      ]),
    );
    let step = server.start();
    while (!step.done && step.stage !== 'unmask') {
      for (const [id, request] of step.requests) server.receive(await clients.get(id)!.handle(request, inputs.get(id)));
      step = await server.advance();
    }
    if (step.done) throw new Error('the round ended early');
    type Signed = { signatures: Array<{ clientId: string; signature: string }> };
    const requestOf = (id: ClientId) => structuredClone(step.requests.get(id)) as Signed;
    return { server, clients, step, requestOf };
  }

  const flip = (sig: string) => (sig[0] === '0' ? '1' : '0') + sig.slice(1);

  it('the pool checks each client’s unmask signatures in one batch, and the round unmasks the exact sum', async () => {
    const recording = new RecordingVerifier(pool);
    const { server, clients, step } = await untilUnmask(recording);
    const before = recording.batches.length;
    for (const [id, request] of step.requests) {
      const reply = await clients.get(id)!.handle(request);
      server.receive(reply);
      const asked = request as { activeIds: string[]; signatures: unknown[] };
      expect(recording.batches.at(-1)).toBe(asked.signatures.length);
      expect((reply as { selfMaskShares: Array<{ ownerId: string }> }).selfMaskShares.map((s) => s.ownerId)).toEqual(
        asked.activeIds,
      );
    }
    expect(recording.batches.length - before).toBe(n);
    const done = await server.advance();
    if (!done.done) throw new Error('not done');
    expect(Array.from(done.result.sum)).toEqual(Array.from(plainSum(inputs.values())));
    for (const c of clients.values()) expect(c.precomputeFailure).toBeUndefined();
  });

  it.each([
    ['the pool', () => pool],
    ['a crashed pool (in-thread fallback)', () => crashedPool],
    ['no pool (in-thread)', () => undefined],
  ])('%s: a forged survivor-set signature is refused with SECAGG_SIGNATURE_INVALID, nothing revealed', async (_, v) => {
    const { clients, requestOf } = await untilUnmask(v());
    const target = ids[0];
    const request = requestOf(target);
    const forged = request.signatures[2];
    forged.signature = flip(forged.signature);
    const client = clients.get(target)!;
    const err = await client.handle(request).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(TributaryError);
    expect(err).toMatchObject({ code: 'SECAGG_SIGNATURE_INVALID', details: { signer: forged.clientId } });
    expect(client.stage).toBe('aborted');
    expect(client.revealedShares.size).toBe(0);
    for (const c of clients.values()) c.dispose();
  });

  it.each([
    ['the pool', () => pool],
    ['no pool (in-thread)', () => undefined],
  ])(
    '%s: the first bad entry in order decides the error (forged before a duplicate, duplicate before a forged)',
    async (_, v) => {
      const target = ids[0];
      // A forged signature listed before a duplicate entry: the signature error, as the in-thread loop gives.
      const first = await untilUnmask(v());
      const a = first.requestOf(target);
      a.signatures[0].signature = flip(a.signatures[0].signature);
      a.signatures.push({ ...a.signatures[1] });
      await expect(first.clients.get(target)!.handle(a)).rejects.toMatchObject({
        code: 'SECAGG_SIGNATURE_INVALID',
        details: { signer: a.signatures[0].clientId },
      });
      for (const c of first.clients.values()) c.dispose();
      // A duplicate listed before a forged signature: the message error (the forged one is never reached).
      const second = await untilUnmask(v());
      const b = second.requestOf(target);
      b.signatures.splice(1, 0, { ...b.signatures[0] });
      b.signatures[2].signature = flip(b.signatures[2].signature);
      await expect(second.clients.get(target)!.handle(b)).rejects.toMatchObject({ code: 'SECAGG_MESSAGE_INVALID' });
      for (const c of second.clients.values()) c.dispose();
    },
  );

  it('a session disposed while its unmask batch is in the pool reveals nothing and fails with a typed error', async () => {
    // The shared pool until unmask; then a verifier that holds the batch until the test releases it.
    let current: SignatureBatchVerifier = pool;
    const switching: SignatureBatchVerifier = { verifyAll: (checks) => current.verifyAll(checks) };
    const { clients, step } = await untilUnmask(switching);
    let release: () => void = () => undefined;
    current = {
      verifyAll: (checks) => new Promise<void>((r) => (release = r)).then(() => pool.verifyAll(checks)),
    };
    const target = ids[2];
    const client = clients.get(target)!;
    const answer = client.handle(step.requests.get(target)).then(
      () => null,
      (e: unknown) => e,
    );
    await new Promise((r) => setImmediate(r));
    client.dispose(); // e.g. a newer round started meanwhile
    release();
    expect(await answer).toMatchObject({ code: 'SECAGG_MESSAGE_INVALID', message: /aborted while its signatures/ });
    expect(client.stage).toBe('aborted');
    expect(client.revealedShares.size).toBe(0);
    for (const c of clients.values()) c.dispose();
  });

  it('a pool thread that dies with the batch in flight: the client checks in its own thread and answers', async () => {
    const dying = new SecAggWorkerPool(1);
    // The shared pool until unmask; then the dying one, whose only thread is killed with the batch queued.
    let current: SignatureBatchVerifier = pool;
    const switching: SignatureBatchVerifier = { verifyAll: (checks) => current.verifyAll(checks) };
    try {
      const { server, clients, step } = await untilUnmask(switching);
      const target = ids[1];
      // Occupy the single thread, queue the batch behind it, then kill the thread: the batch fails mid-flight.
      const busy = dying.maskSum(
        Array.from({ length: 64 }, () => ({ seed: new Uint8Array(32).fill(7), sign: 1 as const })),
        4_000_000,
      );
      current = {
        verifyAll: (checks) => {
          const call = dying.verifyAll(checks);
          void dying.threadsForTesting[0].terminate();
          return call;
        },
      };
      const reply = await clients.get(target)!.handle(step.requests.get(target));
      await expect(busy).rejects.toMatchObject({ code: 'SECAGG_MASK_WORKER_FAILED' });
      expect(dying.usable).toBe(false);
      expect(clients.get(target)!.precomputeFailure).toMatchObject({ code: 'SECAGG_MASK_WORKER_FAILED' });
      expect(reply.stage).toBe('unmask');
      server.receive(reply);
      for (const [id, request] of step.requests)
        if (id !== target) server.receive(await clients.get(id)!.handle(request));
      const done = await server.advance();
      if (!done.done) throw new Error('not done');
      expect(Array.from(done.result.sum)).toEqual(Array.from(plainSum(inputs.values())));
    } finally {
      await dying.close();
    }
  });
});
