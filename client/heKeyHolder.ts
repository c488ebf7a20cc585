import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { writeNewSecretJsonFile } from '../shared/identity/secretFile';
import { totalParameters } from '../shared/codec/tensors';
import { TributaryError, toTributaryError } from '../shared/errors';
import {
  CiphertextSum,
  checkCiphertexts,
  ciphertextDigest,
  ciphertextLayout,
  DEFAULT_HE_PARAMETER_SET,
  generateHeKeys,
  HE_PARAMETER_SET_NAMES,
  HeDecryptor,
  HeEncryptor,
  heCiphertextCount,
  type HeParameterSetName,
  heParameterSet,
  publicKeyProblem,
  secretKeyProblem,
  verifyHeSubmission,
} from '../shared/he';
import { generateIdentity, type Identity, identityFromSecretKey } from '../shared/identity/keyPair';
import { SignatureVerifier } from '../shared/identity/signing';
import {
  type HeCiphertexts,
  HeCiphertextsSchema,
  type HeDecryptRequest,
  HeDecryptRequestSchema,
} from '../shared/schemas/heMessages';
import { heParamsOf } from '../shared/schemas/jobSpec';
import type { DecryptRefusalReason, JoinResult } from '../shared/schemas/messages';
import { CoordinatorConnection, type JobFinished } from './coordinatorConnection';
import { HeDecryptLedger } from './heDecryptLedger';
import { isJobFinished, joinOrFinish } from './joinJob';

const base64 = (max: number) =>
  z
    .string()
    .max(max)
    .regex(/^[A-Za-z0-9+/]*={0,2}$/);
const HeKeyHolderFileSchema = z.object({
  version: z.literal(1),
  kind: z.literal('tributary-he-keyholder'),
  ed25519: z.object({ publicKey: z.string().regex(/^[0-9a-f]{64}$/), secretKey: z.string().regex(/^[0-9a-f]{128}$/) }),
  he: z.object({
    parameterSet: z.enum(HE_PARAMETER_SET_NAMES),
    publicKey: base64(1 << 20),
    secretKey: base64(1 << 20),
  }),
});

/** What an he key holder needs: its Ed25519 identity (the spec's `he.keyHolder`) and the BGV/BFV key pair. */
export interface HeKeyHolderKeys {
  identity: Identity;
  parameterSet: HeParameterSetName;
  /** SEAL's seeded public key (what the spec carries, as base64). */
  publicKey: Uint8Array;
  /** SEAL's secret key. */
  secretKey: Uint8Array;
}

/** The spec fields a key holder's keys give: `he.parameterSet`, `he.publicKey` and `he.keyHolder`. */
export function heKeyHolderSpecFields(keys: HeKeyHolderKeys): {
  parameterSet: HeParameterSetName;
  publicKey: string;
  keyHolder: string;
} {
  return {
    parameterSet: keys.parameterSet,
    publicKey: Buffer.from(keys.publicKey).toString('base64'),
    keyHolder: keys.identity.clientId,
  };
}

/** Generates an Ed25519 identity and a key pair of the parameter set. */
export async function generateHeKeyHolderKeys(
  parameterSet: HeParameterSetName = DEFAULT_HE_PARAMETER_SET,
): Promise<HeKeyHolderKeys> {
  const pair = await generateHeKeys(heParameterSet(parameterSet));
  return { identity: generateIdentity(), parameterSet, ...pair };
}

/** Writes the keys to a new file (mode 0600; refuses to overwrite). The file holds both secret keys. */
export function writeHeKeyHolderKeyFile(path: string, keys: HeKeyHolderKeys): void {
  const file = {
    version: 1,
    kind: 'tributary-he-keyholder',
    ed25519: { publicKey: keys.identity.clientId, secretKey: Buffer.from(keys.identity.secretKey).toString('hex') },
    he: {
      parameterSet: keys.parameterSet,
      publicKey: Buffer.from(keys.publicKey).toString('base64'),
      secretKey: Buffer.from(keys.secretKey).toString('base64'),
    },
  };
  writeNewSecretJsonFile(path, file);
}

/**
 * Loads a key file written by writeHeKeyHolderKeyFile; CONFIG_INVALID when it is not one or its keys
 * do not have their set's layout (that the two HE keys belong together is checked when the key holder runs).
 */
export function loadHeKeyHolderKeyFile(path: string): HeKeyHolderKeys {
  let parsed: z.infer<typeof HeKeyHolderFileSchema>;
  try {
    parsed = HeKeyHolderFileSchema.parse(JSON.parse(readFileSync(path, 'utf8')));
  } catch (err) {
    throw new TributaryError('CONFIG_INVALID', `${path} is not a Tributary he key-holder key file (version 1).`, {
      cause: err,
    });
  }
  const identity = identityFromSecretKey(Buffer.from(parsed.ed25519.secretKey, 'hex'));
  if (identity.clientId !== parsed.ed25519.publicKey) {
    throw new TributaryError(
      'CONFIG_INVALID',
      `Key file ${path}: the Ed25519 public key does not match its secret key.`,
    );
  }
  const set = heParameterSet(parsed.he.parameterSet);
  const publicKey = Uint8Array.from(Buffer.from(parsed.he.publicKey, 'base64'));
  const secretKey = Uint8Array.from(Buffer.from(parsed.he.secretKey, 'base64'));
  const problem = publicKeyProblem(set, publicKey) ?? secretKeyProblem(set, secretKey);
  if (problem) throw new TributaryError('CONFIG_INVALID', `Key file ${path}: ${problem}.`);
  return { identity, parameterSet: parsed.he.parameterSet, publicKey, secretKey };
}

/** Checks that the secret key decrypts what the public key encrypts (CONFIG_INVALID otherwise). */
async function openKeyPair(keys: HeKeyHolderKeys): Promise<HeDecryptor> {
  const set = heParameterSet(keys.parameterSet);
  const decryptor = await HeDecryptor.create(set, keys.secretKey);
  const encryptor = await HeEncryptor.create(set, keys.publicKey);
  try {
    const probe = [0.5, -0.25, 1];
    const quantizer = { set, bits: 16, clipRange: 1 };
    const { sums } = decryptor.decryptSum(encryptor.encrypt(probe, quantizer).ciphertexts, quantizer, 1, 3);
    if (sums.some((v, i) => Math.abs(v - probe[i]) > 1e-4)) throw new Error('mismatch');
  } catch (err) {
    decryptor.delete();
    throw new TributaryError('CONFIG_INVALID', 'The he secret key does not decrypt what its public key encrypts.', {
      cause: err,
    });
  } finally {
    encryptor.delete();
  }
  return decryptor;
}

/** A `contributions` request being received: its ciphertexts so far, added up. */
interface Incoming {
  request: HeDecryptRequest;
  sum: CiphertextSum;
  received: number;
}

/** Why a request is refused: a reason of the shared list and a message for people. */
interface Refusal {
  reason: DecryptRefusalReason;
  message: string;
}

export interface HeKeyHolderOptions {
  /** Coordinator base URL (a single coordinator, a cluster node or a load balancer). */
  url: string;
  /**
   * The cluster's other nodes: the connection fails over to them and follows JOB_ELSEWHERE to the
   * job's owner among them (CoordinatorConnection). @default none
   */
  alternativeUrls?: string[];
  jobId: string;
  keys: HeKeyHolderKeys;
  /** The decrypt ledger's file (keeps refusals across restarts); in memory when absent. */
  ledgerPath?: string;
  reconnectDelayMs?: number;
  maxReconnectDelayMs?: number;
}

export interface HeDecryptedEvent {
  round: number;
  attempt: number;
  clientCount: number;
  /** The smallest noise budget left in the sum's ciphertexts (bits). */
  noiseBudgetBits: number;
  ms: number;
}

/**
 * The key holder of an `he` job (the buyer): joins with `keyholder:join` under the Ed25519 identity
 * named in the spec's `he.keyHolder`, and answers each `he:decrypt` with the decrypted, dequantised
 * sums (signed `aggregate:result`) once the request passes its checks, in this order:
 *
 * 1. the request is for this job, and `length` is the job's parameter count + 1;
 * 2. its contributors are distinct, at least the job's `minClients`, at most `maxClients`, and each is
 *    in the attempt's selection as sent;
 * 3. each contribution's signature verifies under its client id over its digest for this job, round
 *    and attempt (shared/he/submission.ts);
 * 4. unless the spec sets `he.keyHolderSums: false`, the request has form `contributions` (a sum
 *    from the coordinator is refused) and every contribution's ciphertexts follow as `he:ciphertexts`
 *    messages, in order: each has one update's exact size, matches its signed digest, keeps the
 *    set's layout, and is added into a running sum by the key holder itself;
 * 5. the decrypt ledger allows it (HeDecryptLedger: each round attempt at most once, no overlapping
 *    attempts of one round, no going back), and records it before decrypting;
 * 6. every ciphertext keeps the set's minimum noise budget, and the plaintext is a sum the number of
 *    contributors could produce (HeDecryptor.decryptSum).
 *
 * A failure of 1-5 is a refusal (`aggregate:result` with `refusal: {reason}`, the same reasons as
 * the paillier key holder's; the coordinator reports HE_DECRYPT_REFUSED), of 6 a failed decryption
 * (`error` only: HE_DECRYPT_FAILED). Memory: one running sum, plus the `he:ciphertexts` messages
 * that arrive faster than it adds them (the coordinator does not pace them), at most the job's
 * maxClients × one update's bytes; messages beyond that are dropped (the request then fails). What it
 * cannot check: with `keyHolderSums: false`, that the sum really is the sum of the listed
 * contributions' ciphertexts (a coordinator can pass one client's ciphertexts off as the sum: the
 * operator trusts it not to); in any case, that the selection is the coordinator's real one and that the selected
 * clients are not the coordinator's own sybils (see docs/secure-aggregation.md).
 *
 * Events: 'joined' (JoinResult), 'decrypted' (HeDecryptedEvent), 'refused' (message), 'warning' (message).
 */
export class HeKeyHolder extends EventEmitter {
  private connection: CoordinatorConnection | null = null;
  private joined: JoinResult | null = null;
  private decryptor: HeDecryptor | null = null;
  private queue: Promise<void> = Promise.resolve();
  /** The `contributions` request whose ciphertexts are being received, and their running sum. */
  private incoming: Incoming | null = null;
  /** Bytes of `he:ciphertexts` messages queued but not yet added. */
  private queuedBytes = 0;
  private readonly ledger: HeDecryptLedger;
  private readonly verifier = new SignatureVerifier();

  constructor(private readonly options: HeKeyHolderOptions) {
    super();
    this.ledger = new HeDecryptLedger(options.jobId, options.ledgerPath);
  }

  get clientId(): string {
    return this.options.keys.identity.clientId;
  }

  /** Runs until the job finishes (resolves with its final status) or the coordinator refuses us (rejects). */
  async run(): Promise<JobFinished> {
    this.decryptor = await openKeyPair(this.options.keys);
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
        // The coordinator is a trust boundary: every request is validated before it is queued. On the
        // connection, not its socket: a failover to another node of a cluster replaces the socket.
        conn.onServerMessage('heDecrypt', (raw: unknown) => {
          const parsed = HeDecryptRequestSchema.safeParse(raw);
          if (!parsed.success) {
            this.emit('warning', `ignored a malformed he:decrypt: ${parsed.error.issues[0]?.message}`);
            return;
          }
          const request = parsed.data;
          this.enqueue(request.round, () => this.answer(request));
        });
        conn.onServerMessage('heCiphertexts', (raw: unknown) => {
          const parsed = HeCiphertextsSchema.safeParse(raw);
          if (!parsed.success) {
            this.emit('warning', `ignored a malformed he:ciphertexts: ${parsed.error.issues[0]?.message}`);
            return;
          }
          const part = parsed.data;
          const bytes = part.ciphertexts.length;
          if (this.queuedBytes + bytes > this.bufferLimit()) {
            this.emit(
              'warning',
              `dropped the ciphertexts of contribution ${part.index}: more than the job's bound queued`,
            );
            return;
          }
          this.queuedBytes += bytes;
          this.enqueue(part.round, async () => {
            this.queuedBytes -= bytes;
            await this.receive(part);
          });
        });
        // The key holder is not a job member, so job:finished does not reach it: poll the job over REST.
        const poll = setInterval(() => {
          // At the node the connection uses now: any node of a cluster answers every read, a dead one none.
          fetch(new URL(`/v1/jobs/${encodeURIComponent(this.options.jobId)}`, conn.currentUrl))
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
        this.once('closed', () => clearInterval(poll));
        conn.connect();
      });
    } finally {
      this.close();
    }
  }

  private enqueue(round: number, step: () => Promise<void>): void {
    this.queue = this.queue
      .then(step)
      .catch((err) => void this.emit('warning', `decryption of round ${round} failed: ${String(err)}`));
  }

  /** Most `he:ciphertexts` bytes queued at once: the job's maxClients × one update (0 before joining). */
  private bufferLimit(): number {
    const joined = this.joined;
    if (joined?.spec.secureAggregation !== 'he') return 0;
    const set = heParameterSet(joined.spec.he.parameterSet);
    const length = totalParameters(joined.weightManifest) + 1;
    return joined.spec.maxClients * heCiphertextCount(set, length) * set.ciphertextBytes;
  }

  close(): void {
    this.emit('closed');
    this.connection?.close();
    this.connection = null;
    this.decryptor?.delete();
    this.decryptor = null;
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
    const { keys } = this.options;
    if (
      joined.spec.secureAggregation !== 'he' ||
      joined.spec.he.parameterSet !== keys.parameterSet ||
      joined.spec.he.publicKey !== Buffer.from(keys.publicKey).toString('base64')
    ) {
      throw new TributaryError('CONFIG_INVALID', `Job ${joined.jobId}'s he public key is not this key holder's key.`);
    }
    this.joined = joined;
    this.emit('joined', joined);
    return null;
  }

  /** Why the request may not be decrypted (checks 1-3 of the class comment), or null. */
  private refusalOf(request: HeDecryptRequest, joined: JoinResult): Refusal | null {
    const spec = joined.spec;
    const length = totalParameters(joined.weightManifest) + 1;
    if (request.length !== length) {
      return { reason: 'malformed', message: `expected ${length} values, the request says ${request.length}` };
    }
    const ids = request.contributions.map((c) => c.clientId);
    if (new Set(ids).size !== ids.length)
      return { reason: 'duplicate-contributor', message: 'a client contributes twice' };
    if (ids.length < spec.minClients) {
      return {
        reason: 'too-few-clients',
        message: `an aggregate of ${ids.length} client(s) is fewer than the job's minClients (${spec.minClients})`,
      };
    }
    const selected = new Set(request.selected);
    if (selected.size !== request.selected.length || selected.size > spec.maxClients) {
      return {
        reason: 'not-selected',
        message: `the selection (${request.selected.length} ids) is not a set of at most maxClients (${spec.maxClients}) clients`,
      };
    }
    const stranger = ids.find((id) => !selected.has(id));
    if (stranger) {
      return {
        reason: 'not-selected',
        message: `contributor ${stranger.slice(0, 12)}… was not selected for the attempt`,
      };
    }
    const ref = { jobId: request.jobId, round: request.round, attempt: request.attempt };
    const forged = request.contributions.find(
      (c) => !verifyHeSubmission(this.verifier, c.clientId, ref, c.digest, c.signature),
    );
    if (forged)
      return {
        reason: 'signature-invalid',
        message: `the signature of contributor ${forged.clientId.slice(0, 12)}… does not verify for this round attempt`,
      };
    return null;
  }

  private async refuse(request: HeDecryptRequest, { reason, message }: Refusal): Promise<void> {
    if (this.incoming?.request === request) this.incoming = null;
    this.emit('refused', `round ${request.round} attempt ${request.attempt}: ${message}`);
    await this.connection?.sendAggregateResult(request, null, message, reason);
  }

  /** A new request: checks 1-4; a sum is decrypted now, contributions once their ciphertexts arrived. */
  private async answer(request: HeDecryptRequest): Promise<void> {
    // A new request replaces one still being received (the coordinator resends after a reconnect).
    this.incoming = null;
    const joined = this.joined;
    if (!this.connection || !joined || !this.decryptor || request.jobId !== this.options.jobId) return;
    if (joined.spec.secureAggregation !== 'he')
      return this.refuse(request, { reason: 'malformed', message: 'the job is not an he job' });
    const refusal = this.refusalOf(request, joined);
    if (refusal) return this.refuse(request, refusal);
    const options = joined.spec.he;
    const set = heParameterSet(options.parameterSet);
    const count = heCiphertextCount(set, request.length);
    if (request.form === 'contributions') {
      this.incoming = { request, sum: new CiphertextSum(ciphertextLayout(set), count), received: 0 };
      return;
    }
    if (options.keyHolderSums) {
      return this.refuse(request, {
        reason: 'malformed',
        message: "this job's key holder adds the contributions itself; it was sent a sum",
      });
    }
    // A malformed sum is refused before it reaches the ledger (it would use up the attempt).
    try {
      checkCiphertexts(ciphertextLayout(set), request.ciphertexts, count);
    } catch (err) {
      return this.refuse(request, {
        reason: 'ciphertext-invalid',
        message: `the sum: ${toTributaryError(err).message}`,
      });
    }
    const fingerprint = createHash('sha256')
      .update(JSON.stringify([request.length, request.contributions]))
      .update(request.ciphertexts)
      .digest('hex');
    await this.decrypt(request, request.ciphertexts, fingerprint);
  }

  /** One contribution's ciphertexts: in order, exactly one update, its signed digest, the set's layout; then added. */
  private async receive(part: HeCiphertexts): Promise<void> {
    const incoming = this.incoming;
    const joined = this.joined;
    // Parts of a refused or replaced request are dropped.
    if (!incoming || !joined || joined.spec.secureAggregation !== 'he') return;
    const { request, sum } = incoming;
    if (part.jobId !== request.jobId || part.round !== request.round || part.attempt !== request.attempt) return;
    const contribution = request.contributions[part.index];
    if (part.index !== incoming.received || !contribution) {
      return this.refuse(request, {
        reason: 'malformed',
        message: `expected the ciphertexts of contribution ${incoming.received}, got those of ${part.index}`,
      });
    }
    const who = `contributor ${contribution.clientId.slice(0, 12)}…`;
    const set = heParameterSet(joined.spec.he.parameterSet);
    const each = sum.count * set.ciphertextBytes;
    if (part.ciphertexts.length !== each) {
      return this.refuse(request, {
        reason: 'malformed',
        message: `${who}: expected ${sum.count} ciphertexts of ${set.ciphertextBytes} bytes, got ${part.ciphertexts.length} bytes`,
      });
    }
    if (ciphertextDigest(part.ciphertexts) !== contribution.digest) {
      return this.refuse(request, {
        reason: 'signature-invalid',
        message: `the ciphertexts of ${who} do not match its signed digest`,
      });
    }
    try {
      sum.add(part.ciphertexts);
    } catch (err) {
      return this.refuse(request, {
        reason: 'ciphertext-invalid',
        message: `${who}: ${toTributaryError(err).message}`,
      });
    }
    incoming.received++;
    if (incoming.received < request.contributions.length) return;
    this.incoming = null;
    // Every ciphertext matched its signed digest, so the signed contributions name the sum.
    const fingerprint = createHash('sha256')
      .update(JSON.stringify([request.length, request.contributions, 'contributions']))
      .digest('hex');
    await this.decrypt(request, sum.toBytes(), fingerprint);
  }

  /** Checks 5-6: the ledger (recorded before decrypting), then the decryption and the signed answer. */
  private async decrypt(request: HeDecryptRequest, sum: Uint8Array, fingerprint: string): Promise<void> {
    const conn = this.connection;
    const joined = this.joined;
    const decryptor = this.decryptor;
    if (!conn || !joined || !decryptor || joined.spec.secureAggregation !== 'he') return;
    const contributors = request.contributions.map((c) => c.clientId);
    const verdict = this.ledger.check(request.round, request.attempt, fingerprint, contributors);
    if (verdict !== 'new' && verdict !== 'repeat') return this.refuse(request, verdict);
    if (verdict === 'new') this.ledger.record(request.round, request.attempt, fingerprint, contributors);
    const started = Date.now();
    let result: { sums: Float32Array; noiseBudgetBits: number };
    try {
      result = decryptor.decryptSum(sum, heParamsOf(joined.spec.he), contributors.length, request.length);
    } catch (err) {
      const e = toTributaryError(err);
      this.emit('refused', `round ${request.round} attempt ${request.attempt}: ${e.message}`);
      await conn.sendAggregateResult(request, null, e.message);
      return;
    }
    await conn.sendAggregateResult(request, result.sums);
    this.emit('decrypted', {
      round: request.round,
      attempt: request.attempt,
      clientCount: contributors.length,
      noiseBudgetBits: result.noiseBudgetBits,
      ms: Date.now() - started,
    } satisfies HeDecryptedEvent);
  }
}
