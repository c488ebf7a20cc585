/**
 * The paillier key holder against a malicious coordinator, over real sockets: an in-process
 * coordinator on 127.0.0.1 whose own key-holder registry (the paillier mode's) is driven by the test
 * as a malicious coordinator would, and the project's KeyHolder with a ledger file. Each attack
 * (one client's ciphertexts, fewer than minClients, signatures of clients not selected, forged or
 * misbound contributions, rounds and attempts that never ran, the same attempt twice with other
 * ciphertexts, the same after a key-holder restart, a selection other than the one the coordinator
 * records) is refused with a code, and the coordinator receives no decrypted byte for it. Then
 * TributaryClients: a client whose upload carries the ciphertext n is refused at upload and named,
 * sits out the retry, and the job completes with the others; the key holder only ever sees the
 * honest attempt.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  KeyHolder,
  type DecryptedEvent,
  generateKeyHolderKeys,
  type KeyHolderKeys,
  keyHolderSpecFields,
  type RefusedEvent,
} from '../client/keyHolder';
import { TributaryClient } from '../client/tributaryClient';
import { paillierClientMode } from '../client/updates/paillier';
import type { PaillierCoordinatorMode } from '../coordinator/aggregation/paillier/paillierMode';
import type { PaillierContribution } from '../coordinator/aggregation/paillier/paillierAggregator';
import { startCoordinator, type Coordinator } from '../coordinator/server';
import { totalParameters } from '../shared/codec/tensors';
import { TributaryError } from '../shared/errors';
import { generateIdentity, type Identity } from '../shared/identity/keyPair';
import { ciphertextsToBytes, ciphertextWidth, encryptVector, signSubmission, sumErrorBound } from '../shared/paillier';
import { JobSpecSchema, type JobSpecInput, paillierParamsOf } from '../shared/schemas/jobSpec';
import { recordReceivedPackets } from './support/packetRecorder';
import { createJob } from './support/rest';
import { connectionOfLater } from './support/secureRounds';
import { separableDataset } from './support/syntheticCsv';

jest.setTimeout(120_000);

const FEATURES = 4;

function spec(keys: KeyHolderKeys, overrides: Partial<JobSpecInput> = {}): JobSpecInput {
  return {
    name: 'keyholder-e2e',
    model: { kind: 'builtin', name: 'mlp', hiddenUnits: [4] },
    input: { shape: [FEATURES], numClasses: 2 },
    rounds: 2,
    minClients: 3,
    maxClients: 8,
    localEpochs: 1,
    batchSize: 16,
    learningRate: 0.1,
    roundDeadlineMs: 60_000,
    // No provider joins the first jobs: the runner waits at round 1 attempt 0 for the whole test.
    quorumTimeoutMs: 600_000,
    maxRoundRetries: 3,
    seed: 9,
    secureAggregation: 'paillier',
    paillier: { ...keyHolderSpecFields(keys), maxExampleWeight: 1000, decryptTimeoutMs: 30_000 },
    ...overrides,
  } as JobSpecInput;
}

describe('the paillier key holder against a malicious coordinator', () => {
  let coordinator: Coordinator;
  let keys: KeyHolderKeys;
  const holders: KeyHolder[] = [];
  const clients: TributaryClient[] = [];
  // Everything the coordinator receives: a decrypted aggregate arrives as a binary attachment.
  const received = { binary: [] as Buffer[], text: [] as string[] };
  const stateDir = mkdtempSync(join(tmpdir(), 'kh-e2e-'));

  beforeAll(async () => {
    keys = await generateKeyHolderKeys(1024);
    coordinator = await startCoordinator({ port: 0, logLevel: 'error' });
    recordReceivedPackets(coordinator.io, received);
  });

  afterAll(async () => {
    for (const c of clients) c.close();
    for (const h of holders) h.close();
    await coordinator?.close();
  });

  interface Holder {
    holder: KeyHolder;
    decrypted: DecryptedEvent[];
    refused: RefusedEvent[];
  }

  async function startKeyHolder(jobId: string, stateFile: string | undefined): Promise<Holder> {
    const holder = new KeyHolder({ url: coordinator.url, jobId, keys, stateFile });
    holders.push(holder);
    const decrypted: DecryptedEvent[] = [];
    const refused: RefusedEvent[] = [];
    holder.on('decrypted', (e: DecryptedEvent) => decrypted.push(e));
    holder.on('refused', (e: RefusedEvent) => refused.push(e));
    const joined = new Promise((resolve) => holder.once('joined', resolve));
    holder.run().catch(() => undefined);
    await joined;
    return { holder, decrypted, refused };
  }

  /** The coordinator's own paillier mode: its key-holder registry is what a malicious coordinator drives. */
  async function maliciousCoordinatorOf(jobId: string) {
    const job = await coordinator.jobs.getJob(jobId);
    const mode = coordinator.jobs.modeOf(job) as PaillierCoordinatorMode;
    const parsed = JobSpecSchema.parse(job.spec);
    if (parsed.secureAggregation !== 'paillier') throw new Error('expected a paillier job');
    const params = paillierParamsOf(parsed);
    const length = totalParameters(job.weightManifest) + 1;
    const publicKey = keys.privateKey.publicKey;
    const width = ciphertextWidth(publicKey.n);
    /** A client's real, signed submission of `values` for (round, attempt). */
    const submit = async (identity: Identity, value: number, round = 1, attempt = 0): Promise<PaillierContribution> => {
      const values = Array.from({ length }, (_, i) => (i === length - 1 ? 0.5 : value));
      const bytes = ciphertextsToBytes((await encryptVector(publicKey, values, params)).ciphertexts, width);
      return {
        clientId: identity.clientId,
        signature: signSubmission(identity, { jobId, round, attempt }, bytes),
        ciphertexts: bytes,
      };
    };
    /** Asks the key holder to decrypt; resolves with the sums or the coded refusal. */
    const decrypt = (
      contributions: PaillierContribution[],
      selected: string[],
      round = 1,
      attempt = 0,
    ): Promise<Float32Array | TributaryError> =>
      mode.keyHolders
        .decrypt({ jobId, round, attempt, length, selected, contributions }, 30_000)
        .catch((e: TributaryError) => e);
    return { submit, decrypt, params, length };
  }

  const refusalOf = (outcome: Float32Array | TributaryError) =>
    outcome instanceof TributaryError
      ? { code: outcome.code, reason: (outcome.details as { reason?: string } | undefined)?.reason }
      : 'decrypted';

  it('refuses every attack with a code and decrypts nothing for it, across a restart', async () => {
    const jobId = await createJob(coordinator.url, spec(keys));
    const stateFile = join(stateDir, `${jobId}.ledger.json`);
    let kh = await startKeyHolder(jobId, stateFile);
    const evil = await maliciousCoordinatorOf(jobId);
    const [a, b, c, d, outsider] = Array.from({ length: 5 }, () => generateIdentity());
    const selected = [a, b, c, d].map((x) => x.clientId);
    const [ua, ub, uc, ud, uo] = await Promise.all(
      [a, b, c, d, outsider].map((x, i) => evil.submit(x, 0.01 * (i + 1))),
    );
    const binaryBefore = received.binary.length;
    const refused = (reason: string) => ({ code: 'PAILLIER_DECRYPT_REFUSED', reason });

    // One client's ciphertexts, fewer than minClients (3), or padded with a duplicate.
    expect(refusalOf(await evil.decrypt([ua], selected))).toEqual(refused('too-few-clients'));
    expect(refusalOf(await evil.decrypt([ua, ub], selected))).toEqual(refused('too-few-clients'));
    expect(refusalOf(await evil.decrypt([ua, ub, ua], selected))).toEqual(refused('duplicate-contributor'));
    // A validly signed submission of a client not in the attempt's selection.
    expect(refusalOf(await evil.decrypt([ua, ub, uo], selected))).toEqual(refused('not-selected'));
    // Padding the coordinator made itself: zeros under C's name keep C's signature; C's signature for another attempt.
    const forged = { ...uc, ciphertexts: (await evil.submit(generateIdentity(), 0)).ciphertexts };
    expect(refusalOf(await evil.decrypt([ua, ub, forged], selected))).toEqual(refused('signature-invalid'));
    const otherAttempt = await evil.submit(c, 0.03, 1, 1);
    expect(refusalOf(await evil.decrypt([ua, ub, otherAttempt], selected))).toEqual(refused('signature-invalid'));
    // A ciphertext equal to n, under a valid signature (a client colluding with the coordinator).
    const spoiled = Uint8Array.from(uc.ciphertexts);
    spoiled.set(ciphertextsToBytes([keys.privateKey.publicKey.n], ciphertextWidth(keys.privateKey.publicKey.n)), 0);
    const signedSpoiled = {
      ...uc,
      ciphertexts: spoiled,
      signature: signSubmission(c, { jobId, round: 1, attempt: 0 }, spoiled),
    };
    expect(refusalOf(await evil.decrypt([ua, ub, signedSpoiled], selected))).toEqual(refused('ciphertext-invalid'));
    // Rounds and attempts that never ran (the job is at round 1 attempt 0).
    const late = await Promise.all([a, b, c].map((x) => evil.submit(x, 0.01, 5, 0)));
    expect(refusalOf(await evil.decrypt(late, selected, 5, 0))).toEqual(refused('round-not-next'));
    const retried = await Promise.all([a, b, c].map((x) => evil.submit(x, 0.01, 1, 3)));
    expect(refusalOf(await evil.decrypt(retried, selected, 1, 3))).toEqual(refused('attempt-not-next'));
    expect(kh.decrypted).toEqual([]);
    expect(received.binary.length).toBe(binaryBefore);

    // Three selected clients' real submissions: the one thing it decrypts, the sum.
    const sums = await evil.decrypt([ua, ub, uc], selected);
    expect(sums).toBeInstanceOf(Float32Array);
    const bound = sumErrorBound(evil.params, 3) + 1e-6;
    expect(Math.abs((sums as Float32Array)[0] - 0.06)).toBeLessThanOrEqual(bound);
    expect(Math.abs((sums as Float32Array)[evil.length - 1] - 1.5)).toBeLessThanOrEqual(bound);
    expect(kh.decrypted.map((e) => [e.round, e.attempt, e.clientCount])).toEqual([[1, 0, 3]]);
    expect(received.binary.length).toBe(binaryBefore + 1);
    // The identical contributions resent (as after a reconnect) are answered again: nothing new is revealed.
    const again = await evil.decrypt([uc, ua, ub], selected);
    expect([...(again as Float32Array)]).toEqual([...(sums as Float32Array)]);
    const binaryAfterLegit = received.binary.length;

    // The same round attempt again with other contributors, or with other ciphertexts of the same contributors.
    expect(refusalOf(await evil.decrypt([ua, ub, ud], selected))).toEqual(refused('already-decrypted'));
    expect(refusalOf(await evil.decrypt([ua, ub, uc, ud], selected))).toEqual(refused('already-decrypted'));
    const cAgain = await evil.submit(c, 0.5);
    expect(refusalOf(await evil.decrypt([ua, ub, cAgain], selected))).toEqual(refused('already-decrypted'));

    // The key holder restarts from its ledger file: the attempt is still decrypted, and still refused.
    kh.holder.close();
    kh = await startKeyHolder(jobId, stateFile);
    expect(refusalOf(await evil.decrypt([ua, ub, cAgain], selected))).toEqual(refused('already-decrypted'));
    expect(refusalOf(await evil.decrypt([ua, ub, ud], selected))).toEqual(refused('already-decrypted'));
    expect(refusalOf(await evil.decrypt([ub], selected))).toEqual(refused('too-few-clients'));
    expect(kh.decrypted).toEqual([]);
    expect(kh.refused.map((e) => e.reason)).toEqual(['already-decrypted', 'already-decrypted', 'too-few-clients']);
    expect(received.binary.length).toBe(binaryAfterLegit);
    // One connection per key: the next test's key holder uses the same identity.
    kh.holder.close();
  });

  it("stops decrypting for a job once the coordinator's records show another selection than it claimed", async () => {
    // This job's runner gives up waiting for providers after a few seconds and records attempt 0 (no one selected).
    const jobId = await createJob(coordinator.url, spec(keys, { quorumTimeoutMs: 12_000, name: 'keyholder-diverges' }));
    const kh = await startKeyHolder(jobId, join(stateDir, `${jobId}.ledger.json`));
    const evil = await maliciousCoordinatorOf(jobId);
    const ids = Array.from({ length: 4 }, () => generateIdentity());
    const claimed = ids.map((x) => x.clientId);
    const first = await Promise.all(ids.slice(0, 3).map((x) => evil.submit(x, 0.02)));
    // The coordinator claims a selection for attempt 0 and gets the sum (nothing contradicts it yet) ...
    expect(await evil.decrypt(first, claimed)).toBeInstanceOf(Float32Array);
    // ... but records attempt 0 with the selection it really made (nobody: no provider joined).
    const deadline = Date.now() + 60_000;
    while (!(await coordinator.store.listRounds(jobId)).some((r) => r.round === 1 && r.attempt === 0)) {
      if (Date.now() > deadline) throw new Error('attempt 0 was never recorded');
      await new Promise((r) => setTimeout(r, 200));
    }
    expect((await coordinator.store.listRounds(jobId))[0].selected).toEqual([]);
    const binaryBefore = received.binary.length;
    const second = await Promise.all(ids.slice(0, 3).map((x) => evil.submit(x, 0.02, 1, 1)));
    expect(refusalOf(await evil.decrypt(second, claimed, 1, 1))).toEqual({
      code: 'PAILLIER_DECRYPT_REFUSED',
      reason: 'record-diverges',
    });
    expect(kh.decrypted.map((e) => e.attempt)).toEqual([0]);
    expect(received.binary.length).toBe(binaryBefore);
    kh.holder.close();
  });

  it('refuses a ciphertext equal to n at upload, names its sender, leaves it out of the retry, and completes with the others', async () => {
    const jobId = await createJob(
      coordinator.url,
      spec(keys, { name: 'keyholder-nonunit', rounds: 1, minClients: 4, quorumTimeoutMs: 60_000, maxRoundRetries: 2 }),
    );
    const kh = await startKeyHolder(jobId, join(stateDir, `${jobId}.ledger.json`));
    const saboteur = generateIdentity();
    const n = keys.privateKey.publicKey.n;
    const originalEncrypt = paillierClientMode.encrypt;
    // The saboteur runs the project's own client, whose encryption puts n in the first ciphertext.
    paillierClientMode.encrypt = async (context, trained) => {
      const payload = await originalEncrypt(context, trained);
      if (context.identity.clientId !== saboteur.clientId) return payload;
      const spoiled = Uint8Array.from(payload);
      spoiled.set(ciphertextsToBytes([n], ciphertextWidth(n)), 0);
      return spoiled;
    };
    const uploadErrors: unknown[] = [];
    const start = (identity: Identity, seed: number) => {
      const client = new TributaryClient({
        url: coordinator.url,
        jobId,
        identity,
        dataset: separableDataset(80, FEATURES, seed),
        backend: 'cpu',
      });
      if (identity === saboteur) {
        connectionOfLater(client, (conn) => {
          const submit = conn.submitUpdate.bind(conn);
          conn.submitUpdate = (...args) => submit(...args).catch((err) => void uploadErrors.push(err));
        });
      }
      client.run().catch(() => undefined);
      clients.push(client);
      return client;
    };
    try {
      const honest = [generateIdentity(), generateIdentity(), generateIdentity()];
      for (const [i, identity] of [...honest, saboteur].entries()) start(identity, 30 + i);
      // Attempt 0: the saboteur is dropped at upload, three updates remain, fewer than minClients 4.
      const deadline = Date.now() + 90_000;
      while (!(await coordinator.store.listRounds(jobId)).some((r) => r.attempt === 0)) {
        if (Date.now() > deadline) throw new Error('attempt 0 was never recorded');
        await new Promise((r) => setTimeout(r, 200));
      }
      // A fourth honest client arrives for the retry.
      const late = generateIdentity();
      start(late, 40);
      const job = await coordinator.jobs.waitForJob(jobId);
      expect(job.status).toBe('completed');

      expect(uploadErrors).toHaveLength(1);
      expect(uploadErrors[0]).toMatchObject({
        code: 'PAILLIER_CIPHERTEXT_INVALID',
        details: { members: [saboteur.clientId], index: 0 },
      });
      const rounds = await coordinator.store.listRounds(jobId);
      expect(rounds.map((r) => [r.attempt, r.status])).toEqual([
        [0, 'failed'],
        [1, 'completed'],
      ]);
      const [first, retry] = rounds;
      expect(first.failureReason).toMatch(/^ROUND_QUORUM_NOT_MET: 3 of the 4/);
      expect(first.selected).toContain(saboteur.clientId);
      expect(first.participants.sort()).toEqual(honest.map((x) => x.clientId).sort());
      expect(first.failures).toEqual([
        { clientId: saboteur.clientId, reason: expect.stringMatching(/^PAILLIER_CIPHERTEXT_INVALID: /) },
      ]);
      // Still connected, but left out of the retry.
      expect(coordinator.directory.members(jobId)).toContain(saboteur.clientId);
      expect(retry.selected.sort()).toEqual([...honest, late].map((x) => x.clientId).sort());
      expect(retry.participants.sort()).toEqual(retry.selected);
      // The key holder only ever saw the honest attempt.
      expect(kh.decrypted.map((e) => [e.round, e.attempt, e.clientCount])).toEqual([[1, 1, 4]]);
      expect(kh.refused).toEqual([]);
    } finally {
      paillierClientMode.encrypt = originalEncrypt;
    }
  });
});
