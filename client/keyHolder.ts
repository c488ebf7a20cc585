import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { modInv } from 'bigint-crypto-utils';
import { PrivateKey, PublicKey } from 'paillier-bigint';
import { z } from 'zod';
import { writeNewSecretJsonFile } from '../shared/identity/secretFile';
import { totalParameters } from '../shared/codec/tensors';
import { TributaryError, toTributaryError } from '../shared/errors';
import { generateIdentity, identityFromSecretKey, type Identity } from '../shared/identity/keyPair';
import { SignatureVerifier } from '../shared/identity/signing';
import {
  ciphertextCount,
  ciphertextDigest,
  ciphertextWidth,
  ciphertextsFromBytes,
  decryptSum,
  firstNonUnit,
  generatePaillierKeys,
  type PackedPaillierParams,
  verifySubmission,
} from '../shared/paillier';
import { paillierParamsOf } from '../shared/schemas/jobSpec';
import type { DecryptRefusalReason, JoinResult } from '../shared/schemas/messages';
import {
  CoordinatorConnection,
  type AggregateCiphertexts,
  type AggregateDecryptRequest,
  type JobFinished,
} from './coordinatorConnection';
import { isJobFinished, joinOrFinish } from './joinJob';
import { KeyHolderLedger } from './keyHolderLedger';
import {
  checkDecryptRequest,
  checkNotDecryptedBefore,
  contributionsDigest,
  type JobStateView,
  JobViewSchema,
  ledgerEntry,
  type Refusal,
  type RequestView,
  RoundsViewSchema,
} from './keyHolderPolicy';

const hexBig = z.string().regex(/^[0-9a-f]{1,2048}$/);
const KeyHolderFileSchema = z.object({
  version: z.literal(1),
  kind: z.literal('tributary-keyholder'),
  ed25519: z.object({ publicKey: z.string().regex(/^[0-9a-f]{64}$/), secretKey: z.string().regex(/^[0-9a-f]{128}$/) }),
  paillier: z.object({ n: hexBig, p: hexBig, q: hexBig }),
});

/** What a key holder needs: its Ed25519 identity (the spec's `paillier.keyHolder`) and the Paillier private key. */
export interface KeyHolderKeys {
  identity: Identity;
  privateKey: PrivateKey;
}

/** The simple-variant (g = n + 1) private key of n = p·q: λ = φ(n), μ = λ⁻¹ mod n. */
export function paillierPrivateKeyFromPrimes(p: bigint, q: bigint): PrivateKey {
  const n = p * q;
  const lambda = (p - 1n) * (q - 1n);
  return new PrivateKey(lambda, modInv(lambda, n), new PublicKey(n, n + 1n), p, q);
}

/** The spec fields a key holder's keys give: `paillier.publicKey` and `paillier.keyHolder`. */
export function keyHolderSpecFields(keys: KeyHolderKeys): { publicKey: { n: string }; keyHolder: string } {
  return { publicKey: { n: keys.privateKey.publicKey.n.toString(16) }, keyHolder: keys.identity.clientId };
}

/** Generates an Ed25519 identity and a Paillier key pair of `keyBits` bits. */
export async function generateKeyHolderKeys(keyBits = 2048): Promise<KeyHolderKeys> {
  const pair = await generatePaillierKeys(keyBits);
  const stored = pair.privateKey as unknown as { _p?: bigint; _q?: bigint };
  if (typeof stored._p !== 'bigint' || typeof stored._q !== 'bigint')
    throw new TributaryError('INTERNAL', 'paillier-bigint did not keep p and q');
  return { identity: generateIdentity(), privateKey: paillierPrivateKeyFromPrimes(stored._p, stored._q) };
}

/** Writes the keys to a new file (mode 0600; refuses to overwrite). The file holds both secret keys. */
export function writeKeyHolderKeyFile(path: string, keys: KeyHolderKeys): void {
  const primes = keys.privateKey as unknown as { _p: bigint; _q: bigint };
  const file = {
    version: 1,
    kind: 'tributary-keyholder',
    ed25519: { publicKey: keys.identity.clientId, secretKey: Buffer.from(keys.identity.secretKey).toString('hex') },
    paillier: { n: keys.privateKey.publicKey.n.toString(16), p: primes._p.toString(16), q: primes._q.toString(16) },
  };
  writeNewSecretJsonFile(path, file);
}

/** Loads a key file written by `tributary keyholder keygen`; CONFIG_INVALID when it is not one or is inconsistent. */
export function loadKeyHolderKeyFile(path: string): KeyHolderKeys {
  let parsed: z.infer<typeof KeyHolderFileSchema>;
  try {
    parsed = KeyHolderFileSchema.parse(JSON.parse(readFileSync(path, 'utf8')));
  } catch (err) {
    throw new TributaryError('CONFIG_INVALID', `${path} is not a Tributary key-holder key file (version 1).`, {
      cause: err,
    });
  }
  const identity = identityFromSecretKey(Buffer.from(parsed.ed25519.secretKey, 'hex'));
  const p = BigInt(`0x${parsed.paillier.p}`);
  const q = BigInt(`0x${parsed.paillier.q}`);
  if (identity.clientId !== parsed.ed25519.publicKey || p * q !== BigInt(`0x${parsed.paillier.n}`)) {
    throw new TributaryError('CONFIG_INVALID', `Key file ${path}: the public keys do not match the secret keys.`);
  }
  return { identity, privateKey: paillierPrivateKeyFromPrimes(p, q) };
}

export interface KeyHolderOptions {
  /** Coordinator base URL. */
  url: string;
  /** The other nodes of a cluster (docs/cluster.md): the connection fails over between them. @default none */
  alternativeUrls?: string[];
  jobId: string;
  keys: KeyHolderKeys;
  /**
   * The ledger file of the attempts this key holder decrypted (client/keyHolderLedger.ts), so a
   * restart does not forget them. @default none: kept in memory only (in-process use and tests)
   */
  stateFile?: string;
  /** Worker threads for decryption. @default 1 */
  threads?: number;
  /** How long one read of the job's state from the coordinator's REST API may take. @default 10000 */
  jobStateTimeoutMs?: number;
  reconnectDelayMs?: number;
  maxReconnectDelayMs?: number;
}

export interface DecryptedEvent {
  round: number;
  attempt: number;
  clientCount: number;
  ms: number;
}

/** A decryption the key holder refused: nothing was decrypted. */
export interface RefusedEvent {
  round: number;
  attempt: number;
  reason: DecryptRefusalReason;
  message: string;
}

/** A decryption being received: its request, then one contribution's ciphertexts at a time. */
interface Incoming {
  request: AggregateDecryptRequest;
  view: RequestView;
  received: number;
  product: bigint[] | null;
  digests: { clientId: string; digest: string }[];
}

/** The job's state as its coordinator publishes it over REST (the answers are parsed: a trust boundary). */
async function readJobState(url: string, jobId: string, timeoutMs: number): Promise<JobStateView> {
  const get = async (path: string): Promise<unknown> => {
    const res = await fetch(new URL(path, url), { signal: AbortSignal.timeout(timeoutMs) });
    if (!res.ok) throw new Error(`GET ${path} answered ${res.status}`);
    return res.json();
  };
  const id = encodeURIComponent(jobId);
  const job = JobViewSchema.parse(await get(`/v1/jobs/${id}`));
  const { rounds } = RoundsViewSchema.parse(await get(`/v1/jobs/${id}/rounds`));
  return { status: job.status, currentRound: job.currentRound, rounds };
}

/**
 * The key holder of a `paillier` job (the buyer): joins with `keyholder:join` under the Ed25519
 * identity named in the spec's `paillier.keyHolder` and decrypts sums, never a single client's
 * update, without trusting the coordinator's word. For each `aggregate:decrypt` it
 * 1. checks the request against the job as the coordinator publishes it (REST) and its own ledger
 *    (client/keyHolderPolicy.ts: at least minClients distinct contributors, all in the attempt's
 *    selection; the job's next round and the attempt after the recorded ones; earlier decryptions
 *    match the coordinator's records; no partly overlapping attempts of a round);
 * 2. receives every contributor's ciphertexts (`aggregate:ciphertexts`), verifies each client's
 *    Ed25519 signature over their SHA-256 for this (job, round, attempt), checks every ciphertext is
 *    in [1, n²) and a unit, and multiplies them itself;
 * 3. records the attempt in its ledger (a file that survives restarts) before decrypting, and
 *    decrypts each round attempt at most once (the same contributions resent after a reconnect are
 *    answered again; they reveal nothing new);
 * 4. answers with the signed `aggregate:result`: the Float32 sums, or a coded refusal.
 * What it still trusts (docs/secure-aggregation.md): that the clients are not the coordinator's
 * sybils, and that the records the coordinator publishes are the ones it commits. It holds every
 * contributor's ciphertexts and the key, so it could decrypt one client's update: the key holder
 * must be a party the providers trust with their updates (docs/threat-model.md).
 *
 * Events: 'joined' (JoinResult), 'decrypted' (DecryptedEvent), 'refused' (RefusedEvent), 'warning' (message).
 */
export class KeyHolder extends EventEmitter {
  private connection: CoordinatorConnection | null = null;
  private joined: JoinResult | null = null;
  private queue: Promise<void> = Promise.resolve();
  private incoming: Incoming | null = null;
  private readonly ledger: KeyHolderLedger;
  private readonly verifier = new SignatureVerifier();

  constructor(private readonly options: KeyHolderOptions) {
    super();
    this.ledger = KeyHolderLedger.open(options.stateFile, options.jobId, options.keys.identity.clientId);
  }

  get clientId(): string {
    return this.options.keys.identity.clientId;
  }

  /** Where REST reads go: the node the connection uses now (any node of a cluster answers every read). */
  private get restUrl(): string {
    return this.connection?.currentUrl ?? this.options.url;
  }

  /** Runs until the job finishes (resolves with its final status) or the coordinator refuses us (rejects). */
  async run(): Promise<JobFinished> {
    const conn = new CoordinatorConnection({
      url: this.options.url,
      ...(this.options.alternativeUrls ? { alternativeUrls: this.options.alternativeUrls } : {}),
      identity: this.options.keys.identity,
      reconnectDelayMs: this.options.reconnectDelayMs,
      maxReconnectDelayMs: this.options.maxReconnectDelayMs,
    });
    this.connection = conn;
    try {
      return await new Promise<JobFinished>((resolve, reject) => {
        conn.on('fatal', reject);
        conn.on('protocolError', (m: string) => this.emit('warning', m));
        conn.on('connected', () => {
          this.join().then((finished) => finished && resolve(finished), reject);
        });
        // One queue: a request's checks finish before its ciphertexts are looked at, in arrival order.
        conn.on('decryptRequest', (request: AggregateDecryptRequest) =>
          this.enqueue(`round ${request.round}`, () => this.begin(request)),
        );
        conn.on('decryptCiphertexts', (part: AggregateCiphertexts) =>
          this.enqueue(`round ${part.round}`, () => this.receive(part)),
        );
        // The key holder is not a job member, so job:finished does not reach it: poll the job over REST.
        const poll = setInterval(() => {
          fetch(new URL(`/v1/jobs/${encodeURIComponent(this.options.jobId)}`, this.restUrl))
            .then((r) => r.json() as Promise<{ status?: string; failureReason?: string }>)
            .then((job) => {
              if (job.status === 'completed' || job.status === 'failed') {
                resolve({
                  jobId: this.options.jobId,
                  status: job.status,
                  ...(job.failureReason ? { reason: job.failureReason } : {}),
                });
              }
            })
            .catch(() => undefined);
        }, 1_000);
        poll.unref();
        const stop = () => clearInterval(poll);
        this.once('closed', stop);
        conn.connect();
      });
    } finally {
      this.close();
    }
  }

  close(): void {
    this.emit('closed');
    this.connection?.close();
    this.connection = null;
  }

  private enqueue(what: string, step: () => Promise<void>): void {
    this.queue = this.queue
      .then(step)
      .catch((err) => void this.emit('warning', `decryption of ${what} failed: ${String(err)}`));
  }

  private async join(): Promise<JobFinished | null> {
    const conn = this.connection;
    if (!conn) return null;
    const outcome = await joinOrFinish(
      conn,
      this.options.jobId,
      () => conn.joinAsKeyHolder(this.options.jobId),
      () => conn === this.connection,
      (m) => this.emit('warning', `key holder: ${m}`),
    );
    if (outcome === null || isJobFinished(outcome)) return outcome;
    const joined = outcome;
    const n = this.options.keys.privateKey.publicKey.n.toString(16);
    if (joined.spec.secureAggregation !== 'paillier' || joined.spec.paillier.publicKey.n !== n) {
      throw new TributaryError(
        'CONFIG_INVALID',
        `Job ${joined.jobId}'s paillier public key is not this key holder's key.`,
      );
    }
    this.joined = joined;
    this.emit('joined', joined);
    return null;
  }

  /** The joined job's packing parameters and sizes. */
  private layout(joined: JoinResult): { params: PackedPaillierParams; length: number; count: number; width: number } {
    const spec = joined.spec;
    if (spec.secureAggregation !== 'paillier') throw new TributaryError('CONFIG_INVALID', 'not a paillier job');
    const params = paillierParamsOf({ maxClients: spec.maxClients, paillier: spec.paillier });
    const length = totalParameters(joined.weightManifest) + 1;
    const n = this.options.keys.privateKey.publicKey.n;
    return { params, length, count: ciphertextCount(params, length), width: ciphertextWidth(n) };
  }

  private async refuse(
    request: Pick<AggregateDecryptRequest, 'jobId' | 'round' | 'attempt' | 'length'>,
    refusal: Refusal,
  ): Promise<void> {
    if (this.incoming?.request.round === request.round && this.incoming.request.attempt === request.attempt) {
      this.incoming = null;
    }
    const event: RefusedEvent = { round: request.round, attempt: request.attempt, ...refusal };
    this.emit('refused', event);
    await this.connection?.sendAggregateResult(request, null, refusal.message, refusal.reason);
  }

  /** A new request: rules 1-5 against the coordinator's published state; then its ciphertexts are awaited. */
  private async begin(request: AggregateDecryptRequest): Promise<void> {
    const joined = this.joined;
    if (!this.connection || !joined || request.jobId !== this.options.jobId) return;
    // A new request replaces one still being received (the coordinator resends after a reconnect).
    this.incoming = null;
    const { length } = this.layout(joined);
    if (request.length !== length) {
      return this.refuse(request, {
        reason: 'malformed',
        message: `expected vectors of ${length} values, the request says ${request.length}`,
      });
    }
    let job: JobStateView;
    try {
      job = await readJobState(this.restUrl, this.options.jobId, this.options.jobStateTimeoutMs ?? 10_000);
    } catch (err) {
      return this.refuse(request, {
        reason: 'job-state-unavailable',
        message: `could not read the job's state from the coordinator: ${String((err as Error).message ?? err)}`,
      });
    }
    const view: RequestView = {
      round: request.round,
      attempt: request.attempt,
      selected: request.selected,
      contributors: request.contributions.map((c) => c.clientId),
    };
    const { minClients, maxClients } = joined.spec;
    const refusal = checkDecryptRequest(view, { minClients, maxClients }, job, this.ledger.entries());
    if (refusal) return this.refuse(request, refusal);
    this.incoming = { request, view, received: 0, product: null, digests: [] };
  }

  /** One contribution's ciphertexts: exact size, range, signature, units; multiplied into the product. */
  private async receive(part: AggregateCiphertexts): Promise<void> {
    const incoming = this.incoming;
    const joined = this.joined;
    // Parts of a refused or replaced request are dropped.
    if (!incoming || !joined) return;
    const { request } = incoming;
    if (part.jobId !== request.jobId || part.round !== request.round || part.attempt !== request.attempt) return;
    const { count, width } = this.layout(joined);
    const privateKey = this.options.keys.privateKey;
    const { n, _n2: n2 } = privateKey.publicKey;
    const contribution = request.contributions[part.index];
    if (part.index !== incoming.received || !contribution) {
      return this.refuse(request, {
        reason: 'malformed',
        message: `expected the ciphertexts of contribution ${incoming.received}, got those of ${part.index}`,
      });
    }
    const who = `contribution ${part.index} (client ${contribution.clientId.slice(0, 12)}…)`;
    if (part.ciphertexts.length !== count * width) {
      return this.refuse(request, {
        reason: 'malformed',
        message: `${who}: expected ${count} ciphertexts of ${width} bytes, got ${part.ciphertexts.length} bytes`,
      });
    }
    const digest = ciphertextDigest(part.ciphertexts);
    const ref = { jobId: request.jobId, round: request.round, attempt: request.attempt };
    if (!verifySubmission(this.verifier, contribution.clientId, ref, digest, contribution.signature)) {
      return this.refuse(request, {
        reason: 'signature-invalid',
        message: `${who}: the signature does not verify over these ciphertexts for round ${request.round} attempt ${request.attempt}`,
      });
    }
    let ciphertexts: bigint[];
    try {
      ciphertexts = ciphertextsFromBytes(part.ciphertexts, width, { count, modulus: n2 });
    } catch (err) {
      return this.refuse(request, { reason: 'ciphertext-invalid', message: `${who}: ${(err as Error).message}` });
    }
    const nonUnit = firstNonUnit(ciphertexts, n);
    if (nonUnit !== null) {
      return this.refuse(request, {
        reason: 'ciphertext-invalid',
        message: `${who}: ciphertext ${nonUnit} is not a unit mod n`,
      });
    }
    const product = incoming.product;
    if (!product) incoming.product = ciphertexts;
    else for (let i = 0; i < product.length; i++) product[i] = (product[i] * ciphertexts[i]) % n2;
    incoming.digests.push({ clientId: contribution.clientId, digest });
    incoming.received++;
    if (incoming.received === request.contributions.length) await this.finish(incoming);
  }

  /** Every contribution checked: rule 6, the ledger entry (persisted first), then the decryption. */
  private async finish(incoming: Incoming): Promise<void> {
    this.incoming = null;
    const conn = this.connection;
    const joined = this.joined;
    if (!conn || !joined || !incoming.product) return;
    const { request, view } = incoming;
    const digest = contributionsDigest(request.jobId, request.round, request.attempt, incoming.digests);
    const refusal = checkNotDecryptedBefore(request.round, request.attempt, digest, this.ledger.entries());
    if (refusal) return this.refuse(request, refusal);
    if (!this.ledger.find(request.round, request.attempt)) {
      this.ledger.record(ledgerEntry(view, digest, new Date()));
    }
    const { params, length } = this.layout(joined);
    const started = Date.now();
    let sums: Float32Array;
    try {
      sums = await decryptSum(
        this.options.keys.privateKey,
        incoming.product,
        params,
        view.contributors.length,
        length,
        {
          threads: this.options.threads ?? 1,
        },
      );
    } catch (err) {
      const message = toTributaryError(err).message;
      this.emit('warning', `round ${request.round} attempt ${request.attempt}: ${message}`);
      await conn.sendAggregateResult(request, null, message);
      return;
    }
    this.emit('decrypted', {
      round: request.round,
      attempt: request.attempt,
      clientCount: view.contributors.length,
      ms: Date.now() - started,
    } satisfies DecryptedEvent);
    await conn.sendAggregateResult(request, sums);
  }
}
