/**
 * Issue 11's REST attacks, replayed against a live coordinator on 127.0.0.1 with nothing but HTTP:
 * strangers replacing a job's validation set or downloading its model, listing every job, flooding
 * uploads and job specs, oversized and deeply nested model specs, replayed or altered signatures,
 * stolen tokens. Each is refused with a coded error and leaves the store as it was; /v1/health is
 * timed while the floods run (the figures are printed, not asserted: speed belongs in benchmarks).
 * Also: API keys, Sign-In with Ethereum, delegation, the audit trail, /metrics, logs without secrets,
 * and every JSON answer seen here checked against the served OpenAPI document.
 */
import { createHash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { Wallet } from 'ethers';
import { SiweMessage } from 'siwe';
import {
  type BuyerClient,
  createApiKey,
  createBuyerClient,
  createJob,
  getAudit,
  isApiError,
  listApiKeys,
  listJobs,
  revokeApiKey,
  setDelegates,
  setJobAccess,
  signInWithEthereum,
  uploadValidationSet,
  cancelJob,
  downloadModel,
} from '../client/buyer';
import { createSignedFetch } from '../client/signedFetch';
import { createLogger } from '../coordinator/logger';
import { startCoordinator, type Coordinator } from '../coordinator/server';
import { generateIdentity, type Identity } from '../shared/identity/keyPair';
import { signHttpRequest } from '../shared/identity/httpSignature';
import type { JobSpecInput } from '../shared/schemas/jobSpec';
import { JobViewSchema, WhoAmISchema } from '../shared/schemas/restApi';
import { recordingFetch, responsesNotMatching, type SeenResponse } from './support/openApi';
import { spawnTs } from './support/processes';

jest.setTimeout(180_000);

const spec = (overrides: Partial<JobSpecInput> = {}): JobSpecInput => ({
  name: 'owned job',
  model: { kind: 'builtin', name: 'mlp', hiddenUnits: [4] },
  input: { shape: [2], numClasses: 2 },
  rounds: 1,
  minClients: 2,
  secureAggregation: 'none',
  // No client ever joins: the job stays running for the whole test.
  quorumTimeoutMs: 3_600_000,
  ...overrides,
});
const csv = 'f0,f1,label\n0.5,1,0\n1,2,1\n';
/** Pending or running jobs per identity on this coordinator. */
const QUOTA = 8;
const sha256 = (data: Uint8Array | string) => createHash('sha256').update(data).digest('hex');

/** Latencies of sequential GET /v1/health calls made until `during` settles. */
async function timeHealth(
  url: string,
  during: Promise<unknown>,
): Promise<{ count: number; maxMs: number; p50Ms: number }> {
  let done = false;
  const finished = during.finally(() => {
    done = true;
  });
  const latencies: number[] = [];
  while (!done || latencies.length < 3) {
    const t = performance.now();
    const res = await fetch(`${url}/v1/health`);
    await res.arrayBuffer();
    latencies.push(performance.now() - t);
    if (res.status !== 200) throw new Error(`health answered ${res.status}`);
    await new Promise((r) => setTimeout(r, 10));
  }
  await finished.catch(() => undefined);
  const sorted = [...latencies].sort((a, b) => a - b);
  return { count: latencies.length, maxMs: sorted[sorted.length - 1], p50Ms: sorted[Math.floor(sorted.length / 2)] };
}

describe('REST access control and limits under attack', () => {
  let c: Coordinator;
  const logLines: string[] = [];
  const seen: SeenResponse[] = [];
  const recorded = recordingFetch(seen);
  const owner = generateIdentity();
  const stranger = generateIdentity();
  let ownerClient: BuyerClient;
  let strangerClient: BuyerClient;
  let anonymous: BuyerClient;
  const healthFigures: Record<string, unknown> = {};

  beforeAll(async () => {
    const logger = createLogger('debug', 'coordinator', { write: (line: string) => void logLines.push(line) });
    c = await startCoordinator(
      {
        port: 0,
        backend: 'cpu',
        logLevel: 'debug',
        maxActiveJobsPerIdentity: QUOTA,
        maxScoringEvaluationsPerRound: 1000,
      },
      { logger },
    );
    ownerClient = createBuyerClient({ url: c.url, identity: owner, fetch: recorded });
    strangerClient = createBuyerClient({ url: c.url, identity: stranger, fetch: recorded });
    anonymous = createBuyerClient({ url: c.url, fetch: recorded });
  });

  afterAll(async () => {
    await c?.close();
    // The figures the issue asks for; see the report.
    console.log(`/v1/health under attack: ${JSON.stringify(healthFigures)}`);
  });

  /** Everything a refused request could have changed. */
  async function storeState() {
    const jobs = await c.store.listJobs();
    return {
      jobs: jobs.map((j) => [
        j.id,
        j.status,
        j.updatedAt.getTime(),
        JSON.stringify(j.spec.access ?? null),
        (j.delegates ?? []).join(),
      ]),
      validation: await Promise.all(
        jobs.map(async (j) => {
          const v = await c.store.loadValidationSet(j.id);
          return v ? sha256(v) : null;
        }),
      ),
      audit: (await Promise.all(jobs.map((j) => c.store.listAudit({ jobId: j.id, limit: 1000 })))).flat().length,
    };
  }

  /** Runs test/support/restFlood.ts in its own process while /v1/health is timed here; returns its answers. */
  async function flood(mode: 'uploads' | 'specs', arg: string, as: Identity, figure: string): Promise<string[]> {
    const attacker = spawnTs('test/support/restFlood.ts', [
      c.url,
      mode,
      arg,
      Buffer.from(as.secretKey).toString('hex'),
    ]);
    await attacker.waitForLine((l) => l.includes('"ready"'), 60_000);
    const done = attacker.waitForLine((l) => l.includes('"done"'), 120_000);
    healthFigures[figure] = await timeHealth(c.url, done);
    expect(await attacker.exit).toBe(0);
    return (JSON.parse(await done) as { answers: string[] }).answers;
  }

  const codeOf = async (p: Promise<unknown>) => {
    const err = await p.then(
      () => undefined,
      (e: unknown) => e,
    );
    return isApiError(err) ? `${err.status} ${err.code}` : err === undefined ? 'ok' : String(err);
  };

  it('a stranger cannot replace, cancel, re-invite, read or list a job it does not own; nothing changes', async () => {
    const job = await createJob(ownerClient, { spec: spec({ visibility: 'private' }) });
    expect(job.owner).toBe(`ed25519:${owner.clientId}`);
    await uploadValidationSet(ownerClient, { jobId: job.id, data: csv });
    const before = await storeState();

    for (const [client, expected] of [
      [anonymous, '401 AUTH_REQUIRED'],
      [strangerClient, '403 AUTH_FORBIDDEN'],
    ] as const) {
      expect(await codeOf(uploadValidationSet(client, { jobId: job.id, data: 'f0,f1,label\n9,9,1\n' }))).toBe(expected);
      expect(await codeOf(cancelJob(client, { jobId: job.id }))).toBe(expected);
      expect(await codeOf(setJobAccess(client, { jobId: job.id, access: { mode: 'open' } }))).toBe(expected);
      expect(await codeOf(setDelegates(client, { jobId: job.id, delegates: [`ed25519:${stranger.clientId}`] }))).toBe(
        expected,
      );
      expect(await codeOf(getAudit(client, { jobId: job.id }))).toBe(expected);
      expect(await codeOf(downloadModel(client, { jobId: job.id, round: 0 }))).toBe(expected);
      for (const path of [
        'rounds',
        'participants',
        'model/model.json',
        'model/weights.bin',
        'contributions',
        'payouts',
      ]) {
        expect(
          await codeOf(
            client.request({ method: 'GET', path: `/v1/jobs/${job.id}/${path}`, response: { bytes: true } }),
          ),
        ).toBe(expected);
      }
    }
    // A private job is unlisted: only its owner lists it.
    for (const client of [anonymous, strangerClient]) {
      expect((await listJobs(client, { limit: 100 })).jobs.map((j) => j.id)).not.toContain(job.id);
    }
    expect((await listJobs(ownerClient, { mine: true })).jobs.map((j) => j.id)).toEqual([job.id]);
    // Its id still shows status and spec (providers need it to join), never its managers' private fields.
    const outside = await anonymous.request({
      method: 'GET',
      path: `/v1/jobs/${job.id}`,
      response: { schema: JobViewSchema },
    });
    expect(outside.delegates).toBeUndefined();
    expect(await storeState()).toEqual(before);

    // The owner delegates to the stranger, who can then manage and read the job.
    await setDelegates(ownerClient, { jobId: job.id, delegates: [`ed25519:${stranger.clientId}`] });
    expect((await downloadModel(strangerClient, { jobId: job.id, round: 0 })).tensors.length).toBeGreaterThan(0);
    const replaced = await uploadValidationSet(strangerClient, { jobId: job.id, data: 'f0,f1,label\n1,1,1\n' });
    expect(replaced.examples).toBe(1);
    // Only the owner sets delegates and reads the audit trail.
    expect(await codeOf(setDelegates(strangerClient, { jobId: job.id, delegates: [] }))).toBe('403 AUTH_FORBIDDEN');
    expect(await codeOf(getAudit(strangerClient, { jobId: job.id }))).toBe('403 AUTH_FORBIDDEN');
  });

  it('refuses replayed, altered, stale and misdirected signatures, and creates nothing', async () => {
    const before = (await c.store.listJobs()).length;
    const url = `${c.url}/v1/jobs`;
    const body = JSON.stringify(spec({ name: 'signed once' }));
    const send = (headers: Record<string, string>, sent = body) =>
      fetch(url, { method: 'POST', body: sent, headers: { ...headers, 'content-type': 'application/json' } });
    const codeIn = async (res: Response) =>
      `${res.status} ${((await res.json()) as { error?: { code: string } }).error?.code ?? 'ok'}`;

    const headers = signHttpRequest(owner, { method: 'POST', url, body });
    expect((await send(headers)).status).toBe(201);
    expect(await codeIn(await send(headers))).toBe('401 AUTH_REPLAY');
    // The same signature with another body (the attacker's spec): the digest no longer matches.
    const other = signHttpRequest(owner, { method: 'POST', url, body });
    expect(await codeIn(await send(other, JSON.stringify(spec({ name: 'attacker' }))))).toBe('401 AUTH_BAD_SIGNATURE');
    // A digest recomputed for the new body breaks the signature instead.
    const evil = JSON.stringify(spec({ name: 'attacker' }));
    const resigned = {
      ...signHttpRequest(owner, { method: 'POST', url, body }),
      'content-digest': `sha-256=:${createHash('sha256').update(evil).digest('base64')}:`,
    };
    expect(await codeIn(await send(resigned, evil))).toBe('401 AUTH_BAD_SIGNATURE');
    // Signed for another coordinator (another authority), or ten minutes ago.
    const elsewhere = signHttpRequest(owner, { method: 'POST', url: url.replace(/:\d+\//, ':1/'), body });
    expect(await codeIn(await send(elsewhere))).toBe('401 AUTH_BAD_SIGNATURE');
    const stale = signHttpRequest(
      owner,
      { method: 'POST', url, body },
      { created: Math.floor(Date.now() / 1000) - 600 },
    );
    expect(await codeIn(await send(stale))).toBe('401 AUTH_STALE');
    // Two proofs at once are ambiguous.
    expect(
      await codeIn(await send({ ...signHttpRequest(owner, { method: 'POST', url, body }), authorization: 'Bearer x' })),
    ).toBe('400 VALIDATION_FAILED');
    expect((await c.store.listJobs()).length).toBe(before + 1);
  });

  it('computes model size from the spec and refuses oversized or deeply nested models before building anything', async () => {
    const before = await storeState();
    const rss = process.memoryUsage().rss;
    for (const hiddenUnits of [
      [60_000, 1000],
      [65_536, 3000],
    ]) {
      const refused = await createJob(ownerClient, {
        spec: spec({ model: { kind: 'builtin', name: 'mlp', hiddenUnits }, input: { shape: [1000], numClasses: 10 } }),
      }).catch((e: unknown) => e);
      expect(isApiError(refused, 'MODEL_TOO_LARGE')).toBe(true);
      const details = (refused as { details: { parameters: number; maxParameters: number } }).details;
      expect(details.parameters).toBeGreaterThan(details.maxParameters);
      expect((refused as { status: number }).status).toBe(413);
    }
    // Building the 262M-parameter model would take over 1 GB; a generous bound for everything else running here.
    expect(process.memoryUsage().rss - rss).toBeLessThan(400 * 1024 * 1024);
    // 100,000 levels of nesting (about 0.6 MB of JSON): a coded 400, not a stack overflow.
    const deep = `{"class_name":"Sequential","config":${'{"n":'.repeat(100_000)}{}${'}'.repeat(100_000)}}`;
    const body = `{"name":"deep","model":{"kind":"layers-json","topology":${deep}},"input":{"shape":[2],"numClasses":2},"rounds":1}`;
    const res = await createSignedFetch(owner)(`${c.url}/v1/jobs`, {
      method: 'POST',
      body,
      headers: { 'content-type': 'application/json' },
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { code: string; message: string } }).error).toMatchObject({
      code: 'JOB_SPEC_INVALID',
      message: expect.stringMatching(/nested deeper than 32/),
    });
    // A scoring budget above the operator's cap.
    expect(await codeOf(createJob(ownerClient, { spec: spec({ contribution: { maxEvaluations: 50_000 } }) }))).toBe(
      '400 JOB_SPEC_INVALID',
    );
    expect(await storeState()).toEqual(before);
  });

  it('refuses upload floods before reading them, bounds and serialises uploads, and parses them off the event loop', async () => {
    const job = await createJob(ownerClient, { spec: spec({ name: 'upload target' }) });
    const before = await storeState();
    const put = (headers: Record<string, string>, body: Uint8Array | ReadableStream) =>
      fetch(`${c.url}/v1/jobs/${job.id}/validation-set`, {
        method: 'PUT',
        body,
        headers: { 'content-type': 'text/csv', ...headers },
        duplex: 'half',
      } as RequestInit);
    // Two concurrent 96 MB uploads from a stranger's process (signed: its identity is checked first),
    // then the same from the owner's key (refused by their declared length, before a byte is parsed).
    const strangerAnswers = await flood('uploads', job.id, stranger, 'strangerUploads96MB');
    expect(strangerAnswers.every((a) => a === '403 AUTH_FORBIDDEN')).toBe(true);
    const ownerAnswers = await flood('uploads', job.id, owner, 'ownerUploads96MB');
    // One is refused by its length; the other too, or (arriving while the first is in flight) as a
    // second upload to the same job.
    expect(ownerAnswers).toContain('413 PAYLOAD_TOO_LARGE');
    expect(ownerAnswers.filter((a) => a !== '413 PAYLOAD_TOO_LARGE' && a !== '409 UPLOAD_IN_PROGRESS')).toEqual([]);
    expect(await storeState()).toEqual(before);

    // A 24 MB CSV (about 1.2M rows), streamed slowly: while it is being read, a second upload to the
    // same job is refused; once stored, parsing ran in the worker while /v1/health answered.
    const rows = ['f0,f1,label'];
    for (let i = 0; i < 1_200_000; i++) rows.push(`${(i % 97) / 10},${(i % 13) / 7},${i % 2}`);
    const big = Buffer.from(`${rows.join('\n')}\n`);
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    const stream = new ReadableStream<Uint8Array>({
      async start(controller) {
        controller.enqueue(big.subarray(0, 1024));
        await released;
        for (let at = 1024; at < big.length; at += 1 << 20)
          controller.enqueue(big.subarray(at, Math.min(big.length, at + (1 << 20))));
        controller.close();
      },
    });
    const url = `${c.url}/v1/jobs/${job.id}/validation-set`;
    const first = put(signHttpRequest(owner, { method: 'PUT', url, body: big }), stream);
    await new Promise((r) => setTimeout(r, 300));
    const second = await uploadValidationSet(ownerClient, { jobId: job.id, data: csv }).catch((e: unknown) => e);
    expect(isApiError(second, 'UPLOAD_IN_PROGRESS')).toBe(true);
    release();
    healthFigures.ownerUpload24MBParse = await timeHealth(c.url, first);
    const stored = await first;
    expect(stored.status).toBe(201);
    expect(await stored.json()).toMatchObject({ examples: 1_200_000, sha256: sha256(big) });
    // Each audit entry carries the digest of what was uploaded.
    const audit = (await getAudit(ownerClient, { jobId: job.id })).entries;
    expect(audit.map((e) => e.action)).toEqual(['job.created', 'job.validation-set.replaced']);
    expect(audit[1].digests?.upload).toBe(sha256(big));
  });

  it('refuses job-spec floods before parsing (anonymous) or by quota, and pages every list', async () => {
    const flooder = generateIdentity();
    const flooderClient = createBuyerClient({ url: c.url, identity: flooder, fetch: recorded });
    const before = (await c.store.listJobs()).length;
    // 40 specs of 1.9 MB at once from another process: half anonymous (refused before their body is
    // read), half signed by one key (the large-body gate admits one at a time; an admitted one is
    // parsed and refused for its oversized topology).
    const codes = await flood('specs', '40', flooder, 'jobSpecFlood40x1_9MB');
    expect(codes).toHaveLength(40);
    expect(codes.filter((x) => x === '401 AUTH_REQUIRED')).toHaveLength(20);
    expect(codes.filter((x) => x === '400 JOB_SPEC_INVALID').length).toBeGreaterThanOrEqual(1);
    expect(codes.every((x) => ['401 AUTH_REQUIRED', '400 JOB_SPEC_INVALID', '429 RATE_LIMITED'].includes(x))).toBe(
      true,
    );
    expect((await c.store.listJobs()).length).toBe(before);

    // Quota: QUOTA pending or running jobs per identity here; one more is refused before its body is read.
    for (let i = 0; i < QUOTA; i++) await createJob(flooderClient, { spec: spec({ name: `quota ${i}` }) });
    const over = await createJob(flooderClient, { spec: spec({ name: 'one too many' }) }).catch((e: unknown) => e);
    expect(isApiError(over, 'QUOTA_EXCEEDED') && over.details).toEqual({ resource: 'jobs', limit: QUOTA });
    expect((await c.store.listJobs()).filter((j) => j.owner === `ed25519:${flooder.clientId}`)).toHaveLength(QUOTA);
    // Cancelling one frees a slot.
    const mine = (await listJobs(flooderClient, { mine: true })).jobs;
    await cancelJob(flooderClient, { jobId: mine[0].id, reason: 'make room' });
    await createJob(flooderClient, { spec: spec({ name: 'after cancel' }) });

    // Lists are paged: bounded page sizes, summaries by default, and a cursor walk sees each job once.
    expect(await codeOf(listJobs(anonymous, { limit: 500 }))).toBe('400 VALIDATION_FAILED');
    expect(await codeOf(listJobs(anonymous, { limit: 50, view: 'full' }))).toBe('400 VALIDATION_FAILED');
    const page = await listJobs(anonymous, { limit: 2 });
    expect(page.jobs).toHaveLength(2);
    expect(Object.keys(page.jobs[0])).not.toContain('spec');
    const walked: string[] = [];
    for (let cursor: string | undefined; ; ) {
      const next = await listJobs(anonymous, { limit: 2, ...(cursor ? { cursor } : {}) });
      walked.push(...next.jobs.map((j) => j.id));
      if (!next.nextCursor) break;
      cursor = next.nextCursor;
    }
    const publicJobs = (await c.store.listJobs()).filter((j) => j.visibility === 'public').map((j) => j.id);
    expect(walked).toEqual(publicJobs);
    expect(await codeOf(listJobs(anonymous, { cursor: 'not-a-cursor' }))).toBe('400 VALIDATION_FAILED');
  });

  it('issues scoped, expiring, revocable API keys, shown once and stored hashed', async () => {
    const job = await createJob(ownerClient, { spec: spec({ name: 'api key target', visibility: 'private' }) });
    const created = await createApiKey(ownerClient, { name: 'ci', scopes: ['jobs:read'], expiresInSeconds: 3600 });
    expect(created.key).toMatch(/^trk_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);
    const record = await c.store.getApiKey(created.id);
    expect(record!.tokenHash).toBe(sha256(created.key));
    expect(JSON.stringify(record)).not.toContain(created.key.slice(21));
    expect(JSON.stringify(await listApiKeys(ownerClient))).not.toContain(created.key);

    const machine = createBuyerClient({ url: c.url, apiKey: created.key, fetch: recorded });
    expect((await downloadModel(machine, { jobId: job.id, round: 0 })).round).toBe(0);
    const write = await uploadValidationSet(machine, { jobId: job.id, data: csv }).catch((e: unknown) => e);
    expect(isApiError(write, 'AUTH_FORBIDDEN') && write.details).toEqual({ requiredScope: 'jobs:write' });
    expect(await codeOf(createApiKey(machine, { name: 'more', scopes: ['jobs:write'] }))).toBe('403 AUTH_FORBIDDEN');
    // A guessed secret for a real key id, and a malformed key, are refused alike.
    const guessed = createBuyerClient({
      url: c.url,
      apiKey: `${created.key.slice(0, 21)}${'A'.repeat(43)}`,
      fetch: recorded,
    });
    expect(await codeOf(downloadModel(guessed, { jobId: job.id, round: 0 }))).toBe('401 API_KEY_INVALID');

    await revokeApiKey(ownerClient, { id: created.id });
    expect(await codeOf(downloadModel(machine, { jobId: job.id, round: 0 }))).toBe('401 API_KEY_INVALID');
    expect(await codeOf(revokeApiKey(strangerClient, { id: created.id }))).toBe('404 NOT_FOUND');
    // An expired key (written straight to the store, its expiry past) is refused too.
    const expiredToken = `trk_${'e'.repeat(16)}_${'A'.repeat(43)}`;
    await c.store.saveApiKey({
      id: 'e'.repeat(16),
      owner: `ed25519:${owner.clientId}`,
      name: 'expired',
      scopes: ['jobs:read'],
      tokenHash: sha256(expiredToken),
      createdAt: new Date(Date.now() - 7_200_000),
      expiresAt: new Date(Date.now() - 1000),
    });
    const late = createBuyerClient({ url: c.url, apiKey: expiredToken, fetch: recorded });
    expect(await codeOf(downloadModel(late, { jobId: job.id, round: 0 }))).toBe('401 API_KEY_INVALID');
    const keyActions = (await c.store.listAudit({ actor: `ed25519:${owner.clientId}`, limit: 100 })).map(
      (e) => e.action,
    );
    expect(keyActions).toEqual(expect.arrayContaining(['api-key.created', 'api-key.revoked']));
  });

  it('signs in with Ethereum for a short-lived token bound to this coordinator, with single-use nonces', async () => {
    const wallet = Wallet.createRandom();
    const session = await signInWithEthereum(anonymous, { wallet });
    expect(session.identity).toBe(`eth:${wallet.address.toLowerCase()}`);
    const signedIn = createBuyerClient({ url: c.url, token: session.token, fetch: recorded });
    const who = await signedIn.request({ method: 'GET', path: '/v1/auth/whoami', response: { schema: WhoAmISchema } });
    expect(who).toEqual({ identity: session.identity, via: 'jwt', scopes: 'all' });
    const job = await createJob(signedIn, { spec: spec({ name: 'wallet-owned' }) });
    expect(job.owner).toBe(session.identity);

    // A message replayed, or made for another domain, is refused.
    const nonce = (await (await fetch(`${c.url}/v1/auth/siwe/nonce`)).json()) as { nonce: string; uri: string };
    const messageFor = (domain: string) =>
      new SiweMessage({
        domain,
        address: wallet.address,
        uri: nonce.uri,
        version: '1',
        chainId: 1,
        nonce: nonce.nonce,
        issuedAt: new Date().toISOString(),
      }).prepareMessage();
    const login = async (message: string) => {
      const res = await recorded(`${c.url}/v1/auth/siwe`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ message, signature: await wallet.signMessage(message) }),
      });
      return `${res.status} ${((await res.json()) as { error?: { code: string } }).error?.code ?? 'ok'}`;
    };
    expect(await login(messageFor('evil.example'))).toBe('401 AUTH_SIWE_INVALID');
    // The nonce was consumed by that attempt: the right domain is refused now too.
    expect(await login(messageFor(new URL(c.url).host))).toBe('401 AUTH_SIWE_INVALID');

    // A token from another coordinator (same secret, other address) does not work here.
    const secret = 'ab'.repeat(32);
    const a = await startCoordinator({ port: 0, logLevel: 'silent', backend: 'cpu', jwtSecret: secret });
    const b = await startCoordinator({ port: 0, logLevel: 'silent', backend: 'cpu', jwtSecret: secret });
    try {
      const atA = await signInWithEthereum(createBuyerClient({ url: a.url }), { wallet });
      const onB = createBuyerClient({ url: b.url, token: atA.token });
      expect(await codeOf(createJob(onB, { spec: spec() }))).toBe('401 AUTH_TOKEN_INVALID');
      expect(await codeOf(createJob(createBuyerClient({ url: a.url, token: atA.token }), { spec: spec() }))).toBe('ok');
    } finally {
      await a.close();
      await b.close();
    }
    expect(await codeOf(createJob(createBuyerClient({ url: c.url, token: 'not.a.jwt' }), { spec: spec() }))).toBe(
      '401 AUTH_TOKEN_INVALID',
    );
  });

  it('keeps an audit trail of every state change with actor, time and digests', async () => {
    const job = await createJob(ownerClient, { spec: spec({ name: 'audited' }) });
    await uploadValidationSet(ownerClient, { jobId: job.id, data: csv });
    await setDelegates(ownerClient, { jobId: job.id, delegates: [`ed25519:${stranger.clientId}`] });
    await setJobAccess(strangerClient, { jobId: job.id, access: { mode: 'open' } });
    await cancelJob(strangerClient, { jobId: job.id, reason: 'done testing' });
    expect(await codeOf(cancelJob(ownerClient, { jobId: job.id }))).toBe('409 JOB_NOT_RUNNING');
    const { entries } = await getAudit(ownerClient, { jobId: job.id });
    expect(entries.map((e) => [e.action, e.actor])).toEqual([
      ['job.created', `ed25519:${owner.clientId}`],
      ['job.validation-set.replaced', `ed25519:${owner.clientId}`],
      ['job.delegates.changed', `ed25519:${owner.clientId}`],
      ['job.access.changed', `ed25519:${stranger.clientId}`],
      ['job.cancelled', `ed25519:${stranger.clientId}`],
    ]);
    expect(entries[1].digests).toMatchObject({ upload: sha256(csv) });
    expect(entries[0].digests?.model).toBe(job.modelHash);
    expect(new Date(entries[4].at).getTime()).toBeGreaterThanOrEqual(new Date(entries[0].at).getTime());
    expect((await c.store.getJob(job.id))!).toMatchObject({
      status: 'failed',
      failureReason: expect.stringContaining('done testing'),
    });
  });

  it('serves Prometheus metrics and logs one line per request with its id and no secrets', async () => {
    const res = await fetch(`${c.url}/metrics`);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    // Every line is a comment (# HELP / # TYPE) or a sample: name{labels} value.
    for (const line of text.split('\n').filter((l) => l.length > 0)) {
      expect(line).toMatch(
        /^(# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .*|[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? -?[0-9.e+-]+|.*(NaN|Inf))$/,
      );
    }
    expect(text).toMatch(/^tributary_http_requests_total\{method="POST",route="\/v1\/jobs",status="201"\} [1-9]/m);
    expect(text).toMatch(
      /^tributary_http_requests_total\{method="PUT",route="\/v1\/jobs\/:jobId\/validation-set",status="403"\} [1-9]/m,
    );
    expect(text).toMatch(/^tributary_connected_clients 0$/m);
    expect(text).toContain('tributary_round_phase_seconds');

    const requests = logLines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === 'request');
    expect(requests.length).toBeGreaterThan(50);
    for (const r of requests) expect(r.requestId).toMatch(/^[0-9a-f]{16}$/);
    const all = logLines.join('\n');
    // No credential of this test appears in any line: secret keys, signatures, tokens, API keys.
    expect(all).not.toContain(Buffer.from(owner.secretKey).toString('hex').slice(0, 64));
    expect(all).not.toMatch(/trk_[0-9a-f]{16}_/);
    expect(all).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\./);
    // Structured-field byte sequences (Signature and Content-Digest values) never appear.
    expect(all).not.toMatch(/=:[A-Za-z0-9+/]{40,}={0,2}:/);
  });

  it('documents every route in the OpenAPI document, and every answer seen here matches it', async () => {
    const document = (await (await fetch(`${c.url}/v1/openapi.json`)).json()) as Parameters<
      typeof responsesNotMatching
    >[0];
    expect(document.openapi).toBe('3.1.0');
    const docs = await fetch(`${c.url}/docs/`);
    expect(await docs.text()).toContain('swagger-ui');
    expect((await fetch(`${c.url}/docs/swagger-ui-bundle.js`)).status).toBe(200);
    expect(seen.length).toBeGreaterThan(50);
    expect(responsesNotMatching(document, seen)).toEqual([]);
  });
});

describe('REST rate limits', () => {
  let c: Coordinator;
  beforeAll(async () => {
    c = await startCoordinator({
      port: 0,
      logLevel: 'silent',
      backend: 'cpu',
      rateLimitPerIp: 30,
      rateLimitPerIdentity: 10,
      rateLimitWindowMs: 60_000,
    });
  });
  afterAll(async () => c?.close());

  it('answers 429 RATE_LIMITED with Retry-After per identity and per address, never on health, and counts the hits', async () => {
    const signed = createSignedFetch(generateIdentity());
    const byIdentity: number[] = [];
    for (let i = 0; i < 14; i++) byIdentity.push((await signed(`${c.url}/v1/jobs`)).status);
    expect(byIdentity.slice(0, 10).every((s) => s === 200)).toBe(true);
    expect(byIdentity.slice(10).every((s) => s === 429)).toBe(true);
    const limited = await signed(`${c.url}/v1/jobs`);
    expect(limited.status).toBe(429);
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(((await limited.json()) as { error: { code: string; details: { limiter: string } } }).error).toMatchObject({
      code: 'RATE_LIMITED',
      details: { limiter: 'identity' },
    });
    // Another key from the same address still gets through, until the address's own limit (30).
    const other = createSignedFetch(generateIdentity());
    expect((await other(`${c.url}/v1/jobs`)).status).toBe(200);
    const anonymous: number[] = [];
    for (let i = 0; i < 20; i++) anonymous.push((await fetch(`${c.url}/v1/listings`)).status);
    expect(anonymous).toContain(429);
    const byIp = await fetch(`${c.url}/v1/jobs`);
    expect(byIp.status).toBe(429);
    expect(Number(byIp.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(((await byIp.json()) as { error: { details: { limiter: string } } }).error.details.limiter).toBe('ip');
    // Probes are never limited.
    for (let i = 0; i < 5; i++) expect((await fetch(`${c.url}/v1/health`)).status).toBe(200);
    const metrics = await (await fetch(`${c.url}/metrics`)).text();
    expect(
      Number(/^tributary_rate_limit_hits_total\{limiter="identity"\} (\d+)/m.exec(metrics)?.[1]),
    ).toBeGreaterThanOrEqual(5);
    expect(Number(/^tributary_rate_limit_hits_total\{limiter="ip"\} (\d+)/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(
      1,
    );
  });
});
