import { EventEmitter } from 'node:events';
import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { modInv } from 'bigint-crypto-utils';
import { PrivateKey, PublicKey } from 'paillier-bigint';
import { z } from 'zod';
import { totalParameters } from '../shared/codec/tensors';
import { TributaryError, toTributaryError } from '../shared/errors';
import { generateIdentity, identityFromSecretKey, type Identity } from '../shared/identity/keyPair';
import { ciphertextWidth, ciphertextsFromBytes, decryptSum, generatePaillierKeys } from '../shared/paillier';
import { paillierParamsOf } from '../shared/schemas/jobSpec';
import type { JoinResult } from '../shared/schemas/messages';
import { CoordinatorConnection, type AggregateDecryptRequest, type JobFinished } from './coordinatorConnection';
import { isJobFinished, joinOrFinish } from './joinJob';

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
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  writeFileSync(path, `${JSON.stringify(file, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
  chmodSync(path, 0o600);
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
  jobId: string;
  keys: KeyHolderKeys;
  /** Worker threads for decryption. @default 1 */
  threads?: number;
  reconnectDelayMs?: number;
  maxReconnectDelayMs?: number;
}

export interface DecryptedEvent {
  round: number;
  attempt: number;
  clientCount: number;
  ms: number;
}

/**
 * The key holder of a `paillier` job (the buyer): joins with `keyholder:join` under the Ed25519
 * identity named in the spec's `paillier.keyHolder`, and answers each `aggregate:decrypt` with the
 * decrypted, dequantised sums (signed `aggregate:result`). It only ever sees aggregates: it refuses
 * to decrypt for fewer than the job's minClients clients, and decrypts each round attempt at most
 * once (a resend of the same bytes after a reconnect is answered again). It cannot check that the
 * coordinator really multiplied clientCount updates: a coordinator colluding with or lying to the
 * key holder can have one client's update decrypted (see docs/threat-model.md).
 *
 * Events: 'joined' (JoinResult), 'decrypted' (DecryptedEvent), 'refused' (message), 'warning' (message).
 */
export class KeyHolder extends EventEmitter {
  private connection: CoordinatorConnection | null = null;
  private joined: JoinResult | null = null;
  private queue: Promise<void> = Promise.resolve();
  private readonly answered = new Map<string, string>();

  constructor(private readonly options: KeyHolderOptions) {
    super();
  }

  get clientId(): string {
    return this.options.keys.identity.clientId;
  }

  /** Runs until the job finishes (resolves with its final status) or the coordinator refuses us (rejects). */
  async run(): Promise<JobFinished> {
    const conn = new CoordinatorConnection({
      url: this.options.url,
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
        conn.on('decryptRequest', (request: AggregateDecryptRequest) => {
          this.queue = this.queue
            .then(() => this.answer(request))
            .catch((err) => void this.emit('warning', `decryption of round ${request.round} failed: ${String(err)}`));
        });
        // The key holder is not a job member, so job:finished does not reach it: poll the job over REST.
        const poll = setInterval(() => {
          fetch(new URL(`/v1/jobs/${encodeURIComponent(this.options.jobId)}`, this.options.url))
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

  private async answer(request: AggregateDecryptRequest): Promise<void> {
    const conn = this.connection;
    const joined = this.joined;
    if (!conn || !joined || request.jobId !== this.options.jobId) return;
    const refuse = async (reason: string) => {
      this.emit('refused', `round ${request.round} attempt ${request.attempt}: ${reason}`);
      await conn.sendAggregateResult(request, null, reason);
    };
    const spec = joined.spec;
    const length = totalParameters(joined.weightManifest) + 1;
    if (request.length !== length) return refuse(`expected ${length} values, the request says ${request.length}`);
    if (request.clientCount < spec.minClients) {
      return refuse(
        `an aggregate of ${request.clientCount} client(s) is fewer than the job's minClients (${spec.minClients})`,
      );
    }
    const key = `${request.round}:${request.attempt}`;
    const hash = createHash('sha256').update(request.ciphertexts).digest('hex');
    const previous = this.answered.get(key);
    if (previous !== undefined && previous !== hash)
      return refuse('this round attempt was already decrypted with other ciphertexts');
    this.answered.set(key, hash);
    const started = Date.now();
    let sums: Float32Array;
    try {
      if (spec.secureAggregation !== 'paillier') return refuse('the job is not a paillier job');
      const params = paillierParamsOf({ maxClients: spec.maxClients, paillier: spec.paillier });
      const privateKey = this.options.keys.privateKey;
      const ciphertexts = ciphertextsFromBytes(request.ciphertexts, ciphertextWidth(privateKey.publicKey.n), {
        modulus: privateKey.publicKey._n2,
      });
      sums = await decryptSum(privateKey, ciphertexts, params, request.clientCount, length, {
        threads: this.options.threads ?? 1,
      });
    } catch (err) {
      return refuse(toTributaryError(err).message);
    }
    await conn.sendAggregateResult(request, sums);
    this.emit('decrypted', {
      round: request.round,
      attempt: request.attempt,
      clientCount: request.clientCount,
      ms: Date.now() - started,
    } satisfies DecryptedEvent);
  }
}
