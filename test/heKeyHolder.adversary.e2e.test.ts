/**
 * The he key holder against a malicious coordinator, over real sockets: the test runs its own
 * socket.io server in place of a coordinator, admits the project's HeKeyHolder, and sends it
 * well-formed `he:decrypt` requests built from real clients' signed, encrypted submissions. Each
 * attack gets a refusal and no sums; what the key holder does decrypt is asserted too, including
 * the one thing it cannot check without `he.keyHolderSums` (a sum that holds fewer contributions
 * than it lists), and that keyHolderSums closes it. The decrypt ledger survives a restart.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Server, type Socket } from 'socket.io';
import {
  generateHeKeyHolderKeys,
  HeKeyHolder,
  type HeKeyHolderKeys,
  heKeyHolderSpecFields,
} from '../client/heKeyHolder';
import {
  CiphertextSum,
  ciphertextDigest,
  ciphertextLayout,
  HE_PARAMETER_SETS,
  HeEncryptor,
  heSubmissionBytes,
  heCiphertextCount,
} from '../shared/he';
import { type Identity, generateIdentity } from '../shared/identity/keyPair';
import { signBytes } from '../shared/identity/signing';
import type { HeContribution, HeDecryptRequest } from '../shared/schemas/heMessages';
import { type JobSpecInput, JobSpecSchema } from '../shared/schemas/jobSpec';
import { drownInNoise } from './support/heCiphertexts';

jest.setTimeout(300_000);

const SET = HE_PARAMETER_SETS['bgv-4096'];
const LAYOUT = ciphertextLayout(SET);
const MANIFEST = [{ name: 'w', shape: [5] }];
const LENGTH = 6; // five parameters and the weight
const QUANTIZER = { set: SET, bits: 16, clipRange: 1 };
const JOB = 'job_he_adversary';

interface Answer {
  round: number;
  attempt: number;
  error?: string;
  refusal?: { reason: string };
  sums?: Float32Array;
}

/** A socket.io server playing the coordinator: it admits one key holder and records its answers. */
class MaliciousCoordinator {
  readonly http: HttpServer;
  readonly io: Server;
  private socket: Socket | null = null;
  private readonly answers: Answer[] = [];
  private readonly waiting: Array<(a: Answer) => void> = [];
  joined!: Promise<void>;

  constructor(private readonly joinResult: unknown) {
    // The key holder polls GET /v1/jobs/:id to learn when the job ends: the job stays running.
    this.http = createServer((_req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ status: 'running' }));
    });
    this.io = new Server(this.http, { maxHttpBufferSize: 64 * 1024 * 1024 });
    this.listen();
  }

  private listen(): void {
    this.joined = new Promise((resolve) => {
      this.io.on('connection', (socket) => {
        socket.on('keyholder:join', (_m: unknown, ack: (a: unknown) => void) => {
          this.socket = socket;
          ack({ ok: true, result: this.joinResult });
          resolve();
        });
        socket.on(
          'aggregate:result',
          (m: { round: number; body: string; data?: Buffer }, ack: (a: unknown) => void) => {
            const body = JSON.parse(m.body) as Omit<Answer, 'round' | 'sums'>;
            const answer: Answer = { round: m.round, attempt: body.attempt, error: body.error, refusal: body.refusal };
            if (m.data) answer.sums = new Float32Array(Uint8Array.from(m.data).buffer);
            ack({ ok: true });
            const next = this.waiting.shift();
            if (next) next(answer);
            else this.answers.push(answer);
          },
        );
      });
    });
  }

  async start(): Promise<string> {
    await new Promise<void>((r) => this.http.listen(0, '127.0.0.1', r));
    return `http://127.0.0.1:${(this.http.address() as AddressInfo).port}`;
  }

  /** Sends a decryption request and resolves with the key holder's answer. */
  ask(request: HeDecryptRequest): Promise<Answer> {
    if (!this.socket) throw new Error('no key holder joined');
    const answered = new Promise<Answer>((resolve) => {
      const early = this.answers.shift();
      if (early) resolve(early);
      else this.waiting.push(resolve);
    });
    this.socket.emit('he:decrypt', { ...request, ciphertexts: Buffer.from(request.ciphertexts) });
    return answered;
  }

  async close(): Promise<void> {
    this.io.close();
    await new Promise((r) => this.http.close(r));
  }
}

/** A real client's submission for one round attempt: its vector, ciphertexts and signed digest. */
interface Submission {
  identity: Identity;
  vector: Float32Array;
  ciphertexts: Uint8Array;
  contribution: HeContribution;
}

describe('the he key holder against a malicious coordinator', () => {
  let keys: HeKeyHolderKeys;
  let encryptor: HeEncryptor;
  const clients = Array.from({ length: 6 }, () => generateIdentity());
  const [, , , D, E, F] = clients.map((c) => c.clientId);
  const ids = clients.map((c) => c.clientId);
  const coordinators: MaliciousCoordinator[] = [];
  const holders: HeKeyHolder[] = [];
  const directory = mkdtempSync(join(tmpdir(), 'he-ledger-'));
  const ledgerPath = join(directory, 'ledger.json');

  beforeAll(async () => {
    keys = await generateHeKeyHolderKeys();
    encryptor = await HeEncryptor.create(SET, keys.publicKey);
  });

  afterAll(async () => {
    for (const h of holders) h.close();
    for (const c of coordinators) await c.close();
    encryptor?.delete();
    rmSync(directory, { recursive: true, force: true });
  });

  function joinResult(he: Record<string, unknown> = {}) {
    const spec: JobSpecInput = {
      name: 'he-adversary',
      model: { kind: 'builtin', name: 'mlp', hiddenUnits: [2] },
      input: { shape: [2], numClasses: 2 },
      rounds: 5,
      minClients: 3,
      maxClients: 5,
      secureAggregation: 'he',
      he: { ...heKeyHolderSpecFields(keys), maxExampleWeight: 100, ...he },
    };
    return {
      jobId: JOB,
      spec: JobSpecSchema.parse(spec),
      status: 'running',
      currentRound: 1,
      weightManifest: MANIFEST,
    };
  }

  async function start(he: Record<string, unknown> = {}, ledger?: string) {
    const coordinator = new MaliciousCoordinator(joinResult(he));
    coordinators.push(coordinator);
    const url = await coordinator.start();
    const holder = new HeKeyHolder({ url, jobId: JOB, keys, ...(ledger ? { ledgerPath: ledger } : {}) });
    holders.push(holder);
    holder.run().catch(() => undefined);
    await coordinator.joined;
    await new Promise<void>((resolve) =>
      holder.listenerCount('joined') ? resolve() : holder.once('joined', () => resolve()),
    );
    return { coordinator, holder };
  }

  function submit(client: number, round: number, attempt: number, seed = client): Submission {
    const identity = clients[client];
    const vector = Float32Array.from({ length: LENGTH }, (_, i) => ((seed * 7 + i * 3) % 11) / 20 - 0.25);
    const { ciphertexts } = encryptor.encrypt(vector, QUANTIZER);
    const digest = ciphertextDigest(ciphertexts);
    const signature = signBytes(identity.secretKey, heSubmissionBytes({ jobId: JOB, round, attempt }, digest));
    return { identity, vector, ciphertexts, contribution: { clientId: identity.clientId, digest, signature } };
  }

  function sumOf(parts: readonly Uint8Array[]): Uint8Array {
    const sum = new CiphertextSum(LAYOUT, heCiphertextCount(SET, LENGTH));
    for (const p of parts) sum.add(p);
    return sum.toBytes();
  }

  function request(
    round: number,
    attempt: number,
    subs: readonly Submission[],
    overrides: Partial<HeDecryptRequest> = {},
  ): HeDecryptRequest {
    return {
      jobId: JOB,
      round,
      attempt,
      length: LENGTH,
      selected: ids.slice(0, 5),
      contributions: subs.map((s) => s.contribution),
      form: 'sum',
      ciphertexts: sumOf(subs.map((s) => s.ciphertexts)),
      ...overrides,
    };
  }

  const refusedWith = (answer: Answer, reason: string, pattern: RegExp) => {
    expect(answer.sums).toBeUndefined();
    expect(answer.refusal).toEqual({ reason });
    expect(answer.error).toMatch(pattern);
  };

  const expectSum = (answer: Answer, subs: readonly Submission[]) => {
    expect(answer.error).toBeUndefined();
    expect(answer.sums).toHaveLength(LENGTH);
    for (let i = 0; i < LENGTH; i++) {
      const exact = subs.reduce((a, s) => a + s.vector[i], 0);
      expect(Math.abs((answer.sums as Float32Array)[i] - exact)).toBeLessThan(1e-3);
    }
  };

  it('refuses every request that breaks its checks, decrypts each round attempt once, and keeps refusing after a restart', async () => {
    const { coordinator, holder } = await start({}, ledgerPath);
    const r1 = [0, 1, 2, 3].map((i) => submit(i, 1, 0));
    const [a, b, c, d] = r1;

    // One client's update alone: fewer than minClients (3).
    refusedWith(await coordinator.ask(request(1, 0, [a])), 'too-few-clients', /fewer than the job's minClients/);
    // The same client listed three times.
    refusedWith(await coordinator.ask(request(1, 0, [a, a, a])), 'duplicate-contributor', /contributes twice/);
    // A contributor who was not selected (a sybil the coordinator made up).
    const sybil = generateIdentity();
    const forged = { ...submit(0, 1, 0), identity: sybil };
    forged.contribution = {
      ...forged.contribution,
      clientId: sybil.clientId,
      signature: signBytes(
        sybil.secretKey,
        heSubmissionBytes({ jobId: JOB, round: 1, attempt: 0 }, forged.contribution.digest),
      ),
    };
    refusedWith(await coordinator.ask(request(1, 0, [a, b, forged])), 'not-selected', /was not selected/);
    // A signature forged by the coordinator, and a real one moved to another attempt.
    const badSignature = { ...c, contribution: { ...c.contribution, signature: b.contribution.signature } };
    refusedWith(
      await coordinator.ask(request(1, 0, [a, b, badSignature])),
      'signature-invalid',
      /signature .* does not verify/,
    );
    const otherAttempt = submit(2, 1, 1);
    refusedWith(
      await coordinator.ask(request(1, 0, [a, b, otherAttempt])),
      'signature-invalid',
      /signature .* does not verify/,
    );
    // A sum that is not a valid ciphertext vector is refused (and does not use up the attempt).
    refusedWith(
      await coordinator.ask(request(1, 0, [a, b, c], { ciphertexts: new Uint8Array(100) })),
      'ciphertext-invalid',
      /ciphertexts of .* bytes/,
    );

    // An honest request is decrypted, and the same request again is answered the same.
    const first = await coordinator.ask(request(1, 0, [a, b, c]));
    expectSum(first, [a, b, c]);
    const again = await coordinator.ask(request(1, 0, [a, b, c]));
    expect([...(again.sums as Float32Array)]).toEqual([...(first.sums as Float32Array)]);

    // The same attempt with other contributions; another attempt whose sum would differ by one client.
    refusedWith(await coordinator.ask(request(1, 0, [a, b, d])), 'already-decrypted', /already decrypted/);
    const retry = [a, b, d].map((s) => submit(clients.indexOf(s.identity), 1, 1));
    refusedWith(await coordinator.ask(request(1, 1, retry)), 'overlaps-decrypted', /overlap/);

    // A crafted high-noise ciphertext (still well formed, from a selected, signing client): not decrypted.
    const noisy = submit(4, 2, 0);
    drownInNoise(SET, noisy.ciphertexts);
    // Re-signed by its (colluding) client, so only the noise check stands in the way.
    noisy.contribution = {
      ...noisy.contribution,
      digest: ciphertextDigest(noisy.ciphertexts),
      signature: signBytes(
        clients[4].secretKey,
        heSubmissionBytes({ jobId: JOB, round: 2, attempt: 0 }, ciphertextDigest(noisy.ciphertexts)),
      ),
    };
    const r2 = [0, 1].map((i) => submit(i, 2, 0));
    const noise = await coordinator.ask(request(2, 0, [...r2, noisy]));
    expect(noise.sums).toBeUndefined();
    expect(noise.refusal).toBeUndefined();
    expect(noise.error).toMatch(/noise budget/);

    // Going back to round 1 after round 2 was decrypted.
    const fresh = [3, 4, 5].map((i) => submit(i, 1, 2));
    refusedWith(
      await coordinator.ask(request(1, 2, fresh, { selected: [D, E, F] })),
      'round-not-next',
      /before round 2/,
    );

    // A restarted key holder (same ledger file) still refuses round 1 attempt 0 with other contributions.
    holder.close();
    const restarted = await start({}, ledgerPath);
    refusedWith(await restarted.coordinator.ask(request(1, 0, [a, b, d])), 'already-decrypted', /already decrypted/);
  });

  it('without keyHolderSums it trusts the sum; with keyHolderSums it adds the signed contributions itself', async () => {
    const trusting = await start();
    const [a, b, c] = [0, 1, 2].map((i) => submit(i, 1, 0));
    // The documented gap: three valid signatures, but the "sum" is only a's ciphertexts.
    const lone = await trusting.coordinator.ask(request(1, 0, [a, b, c], { ciphertexts: a.ciphertexts }));
    expectSum(lone, [a]);

    const checking = await start({ keyHolderSums: true });
    // A coordinator sum is refused outright ...
    refusedWith(await checking.coordinator.ask(request(1, 0, [a, b, c])), 'malformed', /adds the contributions itself/);
    // ... so are contributions whose bytes are not the signed ones (a's ciphertexts three times) ...
    const onlyA = Buffer.concat([a.ciphertexts, a.ciphertexts, a.ciphertexts]);
    refusedWith(
      await checking.coordinator.ask(request(1, 0, [a, b, c], { form: 'contributions', ciphertexts: onlyA })),
      'signature-invalid',
      /do not match its signed digest/,
    );
    // ... and the real contributions are added and decrypted.
    const all = Buffer.concat([a.ciphertexts, b.ciphertexts, c.ciphertexts]);
    expectSum(await checking.coordinator.ask(request(1, 0, [a, b, c], { form: 'contributions', ciphertexts: all })), [
      a,
      b,
      c,
    ]);
  });
});
