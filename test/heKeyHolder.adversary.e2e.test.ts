/**
 * The he key holder against a malicious coordinator, over real sockets: the test runs its own
 * socket.io server in place of a coordinator, admits the project's HeKeyHolder, and sends it
 * well-formed `he:decrypt` requests (with their `he:ciphertexts` messages) built from real clients'
 * signed, encrypted submissions. Each attack gets a refusal and no sums; what the key holder does
 * decrypt is asserted too. Under the default spec (`he.keyHolderSums` on) it adds the signed
 * contributions itself, so one client's ciphertexts passed off as the sum, or as every contribution,
 * are refused; with the explicit `keyHolderSums: false` it decrypts a "sum" that holds fewer
 * contributions than it lists (the trust that option needs). The decrypt ledger survives a restart.
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

/** A decryption request as the coordinator sends it: with form `contributions`, its ciphertext messages. */
interface Outgoing {
  request: HeDecryptRequest;
  parts: ReadonlyArray<{ index: number; ciphertexts: Uint8Array }>;
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

  /** Sends a decryption request (and its ciphertext messages) and resolves with the key holder's answer. */
  ask({ request, parts }: Outgoing): Promise<Answer> {
    if (!this.socket) throw new Error('no key holder joined');
    const answered = new Promise<Answer>((resolve) => {
      const early = this.answers.shift();
      if (early) resolve(early);
      else this.waiting.push(resolve);
    });
    const socket = this.socket;
    socket.emit(
      'he:decrypt',
      request.form === 'sum' ? { ...request, ciphertexts: Buffer.from(request.ciphertexts) } : request,
    );
    const { jobId, round, attempt } = request;
    for (const { index, ciphertexts } of parts) {
      socket.emit('he:ciphertexts', { jobId, round, attempt, index, ciphertexts: Buffer.from(ciphertexts) });
    }
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

  /** The contribution a (colluding) client signs over other ciphertexts. */
  function resign(client: number, ciphertexts: Uint8Array, round: number, attempt: number): HeContribution {
    const digest = ciphertextDigest(ciphertexts);
    const signature = signBytes(clients[client].secretKey, heSubmissionBytes({ jobId: JOB, round, attempt }, digest));
    return { clientId: clients[client].clientId, digest, signature };
  }

  function sumOf(parts: readonly Uint8Array[]): Uint8Array {
    const sum = new CiphertextSum(LAYOUT, heCiphertextCount(SET, LENGTH));
    for (const p of parts) sum.add(p);
    return sum.toBytes();
  }

  const header = (round: number, attempt: number, subs: readonly Submission[]) => ({
    jobId: JOB,
    round,
    attempt,
    length: LENGTH,
    selected: ids.slice(0, 5),
    contributions: subs.map((s) => s.contribution),
  });

  /** The default form: the signed contributions, then each one's ciphertexts (`parts`, by default the real ones in order). */
  function request(
    round: number,
    attempt: number,
    subs: readonly Submission[],
    parts: ReadonlyArray<Uint8Array> = subs.map((s) => s.ciphertexts),
    overrides: Partial<ReturnType<typeof header>> = {},
  ): Outgoing {
    return {
      request: { ...header(round, attempt, subs), ...overrides, form: 'contributions' },
      parts: parts.map((ciphertexts, index) => ({ index, ciphertexts })),
    };
  }

  /** The `sum` form: one vector of ciphertexts the coordinator calls the sum (by default the real one). */
  function sumRequest(
    round: number,
    attempt: number,
    subs: readonly Submission[],
    ciphertexts = sumOf(subs.map((s) => s.ciphertexts)),
  ): Outgoing {
    return { request: { ...header(round, attempt, subs), form: 'sum', ciphertexts }, parts: [] };
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
    // Ciphertexts of the wrong size are refused (and do not use up the attempt).
    refusedWith(
      await coordinator.ask(request(1, 0, [a, b, c], [a.ciphertexts, new Uint8Array(100), c.ciphertexts])),
      'malformed',
      /contributor .*: expected 1 ciphertexts of 65649 bytes, got 100 bytes/,
    );
    // So is a contribution whose client signed bytes that are no ciphertexts (a colluding client).
    const garbage = { ...c, ciphertexts: new Uint8Array(c.ciphertexts.length) };
    garbage.contribution = resign(2, garbage.ciphertexts, 1, 0);
    refusedWith(
      await coordinator.ask(request(1, 0, [a, b, garbage])),
      'ciphertext-invalid',
      /does not start like a bgv-4096 ciphertext/,
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
    noisy.contribution = resign(4, noisy.ciphertexts, 2, 0);
    const r2 = [0, 1].map((i) => submit(i, 2, 0));
    const noise = await coordinator.ask(request(2, 0, [...r2, noisy]));
    expect(noise.sums).toBeUndefined();
    expect(noise.refusal).toBeUndefined();
    expect(noise.error).toMatch(/noise budget/);

    // Going back to round 1 after round 2 was decrypted.
    const fresh = [3, 4, 5].map((i) => submit(i, 1, 2));
    refusedWith(
      await coordinator.ask(request(1, 2, fresh, undefined, { selected: [D, E, F] })),
      'round-not-next',
      /before round 2/,
    );

    // A restarted key holder (same ledger file) still refuses round 1 attempt 0 with other contributions.
    holder.close();
    const restarted = await start({}, ledgerPath);
    refusedWith(await restarted.coordinator.ask(request(1, 0, [a, b, d])), 'already-decrypted', /already decrypted/);
  });

  it("under the default spec a coordinator passing one client's ciphertexts as the sum, or listing one contribution as many, gets a refusal and nothing decrypted", async () => {
    const { coordinator } = await start();
    const [a, b, c] = [0, 1, 2].map((i) => submit(i, 1, 0));
    // One client's ciphertexts passed off as the sum of three signed contributions: no sum is trusted ...
    refusedWith(
      await coordinator.ask(sumRequest(1, 0, [a, b, c], a.ciphertexts)),
      'malformed',
      /adds the contributions itself; it was sent a sum/,
    );
    // ... not even the real one.
    refusedWith(await coordinator.ask(sumRequest(1, 0, [a, b, c])), 'malformed', /adds the contributions itself/);
    // a's ciphertexts sent as every contribution: b's and c's signed digests do not match them.
    refusedWith(
      await coordinator.ask(request(1, 0, [a, b, c], [a.ciphertexts, a.ciphertexts, a.ciphertexts])),
      'signature-invalid',
      /the ciphertexts of contributor .* do not match its signed digest/,
    );
    // a's contribution listed three times, with its own ciphertexts each time.
    refusedWith(await coordinator.ask(request(1, 0, [a, a, a])), 'duplicate-contributor', /contributes twice/);
    // Contributions out of order or one left out: the key holder expects each index in turn.
    const shuffled = request(1, 0, [a, b, c]);
    refusedWith(
      await coordinator.ask({ ...shuffled, parts: [shuffled.parts[0], shuffled.parts[2], shuffled.parts[1]] }),
      'malformed',
      /expected the ciphertexts of contribution 1, got those of 2/,
    );
    // None of these used up the attempt: the real contributions are added and decrypted.
    expectSum(await coordinator.ask(request(1, 0, [a, b, c])), [a, b, c]);
  });

  it("with keyHolderSums: false it trusts the coordinator's sum: one client's ciphertexts pass as the sum of three", async () => {
    const trusting = await start({ keyHolderSums: false });
    const [a, b, c] = [0, 1, 2].map((i) => submit(i, 1, 0));
    // The trust this option needs: three valid signatures, but the "sum" is only a's ciphertexts.
    expectSum(await trusting.coordinator.ask(sumRequest(1, 0, [a, b, c], a.ciphertexts)), [a]);
    // It still checks what it can: a sum that is no ciphertext vector is refused.
    const retry = [0, 1, 2].map((i) => submit(i, 1, 1));
    refusedWith(
      await trusting.coordinator.ask(sumRequest(1, 1, retry, new Uint8Array(100))),
      'ciphertext-invalid',
      /the sum: .*got 100 bytes/,
    );
  });
});
