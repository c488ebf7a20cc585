import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import { io, type Socket } from 'socket.io-client';
import type { z } from 'zod';
import { contentHash } from '../shared/codec/modelCodec';
import { TributaryError, isErrorCode } from '../shared/errors';
import type { Identity } from '../shared/identity/keyPair';
import { audienceOf } from '../shared/identity/audience';
import { handshakePayloadHash, newNonce, payloadHash, signFields, type SignedFields } from '../shared/identity/signing';
import {
  AckSchema,
  type AggregateCiphertexts,
  type AggregateDecryptRequest,
  type AggregateResultBody,
  type DecryptRefusalReason,
  type HandshakeAuth,
  type JobFinished,
  type JoinResult,
  MAX_CHUNK_BYTES,
  MAX_SECAGG_PARTS,
  type PayoutBinding,
  PROTOCOL_VERSION,
  type RoundTask,
  type SecAggReplyBody,
  type SecAggRequest,
  type UpdateCommitBody,
} from '../shared/schemas/messages';
import { splitIntoChunks } from '../shared/codec/chunks';
import {
  CLIENT_MESSAGES,
  type ClientBody,
  type ClientMessageName,
  type ClientResult,
  type ClientToServerEvents,
  SERVER_MESSAGES,
  type ServerMessageName,
  type ServerToClientEvents,
} from '../shared/schemas/protocol';

export interface ConnectionOptions {
  /** Coordinator base URL, e.g. http://127.0.0.1:8080 */
  url: string;
  identity: Identity;
  /** First reconnect delay, doubled up to maxReconnectDelayMs with jitter. @default 250 */
  reconnectDelayMs?: number;
  /** @default 5000 */
  maxReconnectDelayMs?: number;
  /** How long to wait for the coordinator to acknowledge a message. @default 60000 */
  ackTimeoutMs?: number;
  /**
   * Other coordinators of the same cluster (coordinator/cluster/): the connection moves to the next
   * one after `failoverAfterErrors` failed connection attempts in a row, and follows a JOB_ELSEWHERE
   * redirect only to a URL of this list. @default none (one coordinator)
   */
  alternativeUrls?: string[];
  /** @default 3 */
  failoverAfterErrors?: number;
}

/**
 * Signs the handshake: proves possession of the key over a fresh timestamp and nonce, for one
 * coordinator (the audience, its origin), so the handshake is refused by any other coordinator.
 */
export function handshakeAuth(identity: Identity, coordinatorUrl: string, now = Date.now()): HandshakeAuth {
  return handshakeAuthWith(identity.clientId, (fields) => signFields(identity.secretKey, fields), coordinatorUrl, now);
}

/** The handshake with any Ed25519 signer over the same fields (load generators sign with node:crypto). */
export function handshakeAuthWith(
  clientId: string,
  sign: (fields: SignedFields) => string,
  coordinatorUrl: string,
  now = Date.now(),
): HandshakeAuth {
  const nonce = newNonce();
  const audience = audienceOf(coordinatorUrl);
  return {
    protocolVersion: PROTOCOL_VERSION,
    publicKey: clientId,
    timestamp: now,
    nonce,
    audience,
    signature: sign({ jobId: '*', round: 0, stage: 'auth', payloadHash: handshakePayloadHash(now, audience), nonce }),
  };
}

/**
 * The client's socket.io connection: authenticates on every (re)connect, signs every message, uploads
 * updates in chunks, and validates what the coordinator sends (its messages are a trust boundary too).
 * socket.io-client reconnects with exponential backoff; listeners of 'connected' rejoin jobs.
 *
 * Events: 'connected', 'disconnected' (reason), 'task' (RoundTask), 'secaggRequest' (SecAggRequest,
 * envelope checked; the payload is validated by the SecAgg+ client), 'decryptRequest'
 * (AggregateDecryptRequest, for a paillier key holder) and its 'decryptCiphertexts'
 * (AggregateCiphertexts, one per contributor, in order), 'jobFinished' (JobFinished),
 * 'fatal' (TributaryError: the coordinator refused the handshake), 'protocolError' (message).
 */
/** Mode requests held until a listener attaches (see deliver). */
type HeldEvent = 'secaggRequest' | 'decryptRequest' | 'decryptCiphertexts';
const MAX_HELD = 64;

/** The connection's events, typed. */
export interface ConnectionEvents {
  connected: [];
  disconnected: [reason: string];
  task: [task: RoundTask];
  secaggRequest: [request: SecAggRequest];
  decryptRequest: [request: AggregateDecryptRequest];
  decryptCiphertexts: [part: AggregateCiphertexts];
  jobFinished: [finished: JobFinished];
  /** The coordinator refused the handshake: reconnecting will not help. */
  fatal: [error: TributaryError];
  protocolError: [message: string];
}

export class CoordinatorConnection extends EventEmitter<ConnectionEvents> {
  private current: Socket<ServerToClientEvents, ClientToServerEvents>;
  private readonly ackTimeoutMs: number;
  private closed = false;
  private readonly held = new Map<HeldEvent, unknown[]>();
  /** The coordinator URLs this connection may use: `url` first, then `alternativeUrls` (a cluster's nodes). */
  private readonly urls: string[];
  private urlIndex = 0;
  /** Connection attempts that failed in a row on the current URL (transport errors, not refusals). */
  private failures = 0;
  /** Listeners of server messages a role handles itself (onServerMessage), put on every socket opened. */
  private readonly messageListeners: Array<[event: string, listener: (raw: unknown) => void]> = [];

  constructor(private readonly options: ConnectionOptions) {
    super();
    this.ackTimeoutMs = options.ackTimeoutMs ?? 60_000;
    this.urls = [...new Set([options.url, ...(options.alternativeUrls ?? [])])];
    this.current = this.createSocket(options.url);
    // A mode request can arrive in the same network read as the join acknowledgement, before the
    // mode's listener exists: hold it until someone listens.
    (this as EventEmitter).on('newListener', (event: string | symbol) => {
      const held = this.held.get(event as HeldEvent);
      if (!held || held.length === 0) return;
      this.held.delete(event as HeldEvent);
      setImmediate(() => {
        for (const r of held) (this as EventEmitter).emit(event, r);
      });
    });
  }

  /** The socket to the coordinator in use now (a failover to another URL replaces it). */
  get socket(): Socket<ServerToClientEvents, ClientToServerEvents> {
    return this.current;
  }

  /**
   * Listens to server message `name` whatever socket this connection uses: a failover or a redial (a
   * cluster's JOB_ELSEWHERE, a dead node) replaces the socket, and a listener put on `socket` itself
   * would stay behind on the old one. The payload comes raw: the listener validates it (the
   * coordinator is a trust boundary).
   */
  onServerMessage(name: ServerMessageName, listener: (raw: unknown) => void): void {
    const event = SERVER_MESSAGES[name].event;
    this.messageListeners.push([event, listener]);
    (this.current as unknown as Socket).on(event, listener);
  }

  /** The coordinator URL in use now. */
  get currentUrl(): string {
    return this.urls[this.urlIndex];
  }

  /**
   * Moves to another coordinator of the cluster: `url` if given (a node named by JOB_ELSEWHERE; only
   * a URL from this connection's own list is followed, so a coordinator cannot send the client to a
   * host it was not given), else the next URL of the list. False if there is nowhere else to go.
   */
  failOver(url?: string): boolean {
    if (this.closed) return false;
    const target = url === undefined ? (this.urlIndex + 1) % this.urls.length : this.urls.indexOf(url);
    if (target < 0 || (url === undefined && this.urls.length < 2)) return false;
    this.urlIndex = target;
    this.replaceSocket(`failing over to ${this.currentUrl}`);
    return true;
  }

  /**
   * Opens a fresh connection to the URL in use. Behind a load balancer (one URL, several nodes) the
   * balancer places the new connection anew: how a client given only the balancer's URL reaches the
   * node a JOB_ELSEWHERE names (docs/cluster.md). False once closed.
   */
  redial(): boolean {
    if (this.closed) return false;
    this.replaceSocket(`dialling ${this.currentUrl} again`);
    return true;
  }

  /** Drops the socket in use and connects a new one to the current URL after the reconnect delay. */
  private replaceSocket(why: string): void {
    this.failures = 0;
    const old = this.current;
    old.removeAllListeners();
    old.disconnect();
    this.current = this.createSocket(this.currentUrl);
    this.emit('disconnected', why);
    // Not unref'd: with the old socket gone, this timer is what keeps a client process alive.
    setTimeout(() => {
      if (!this.closed && this.current !== old) this.current.connect();
    }, this.options.reconnectDelayMs ?? 250);
  }

  /** A socket.io socket for `url` with every listener of this connection on it (not connected yet). */
  private createSocket(url: string): Socket<ServerToClientEvents, ClientToServerEvents> {
    const options = this.options;
    const socket: Socket<ServerToClientEvents, ClientToServerEvents> = io(url, {
      transports: ['websocket'],
      reconnection: true,
      reconnectionDelay: options.reconnectDelayMs ?? 250,
      reconnectionDelayMax: options.maxReconnectDelayMs ?? 5_000,
      randomizationFactor: 0.5,
      // A function, so each reconnect signs a fresh timestamp and nonce, for the URL it connects to.
      auth: (cb) => cb(handshakeAuth(options.identity, url)),
      autoConnect: false,
      // One Manager per socket: a failover must not share the old URL's engine.
      forceNew: true,
    });
    socket.on('connect', () => {
      this.failures = 0;
      this.emit('connected');
    });
    socket.on('disconnect', (reason) => {
      this.emit('disconnected', reason);
      // socket.io does not reconnect after the server closed the connection (e.g. another connection of
      // this key replaced it): try again after the backoff delay; a fresh handshake proves the key again.
      if (reason === 'io server disconnect' && !this.closed) {
        // Not unref'd: nothing else keeps a client process alive until it reconnects.
        setTimeout(() => {
          if (!this.closed && this.current === socket && !socket.connected) socket.connect();
        }, options.reconnectDelayMs ?? 250);
      }
    });
    socket.on('connect_error', (err: Error & { data?: { code?: string; message?: string } }) => {
      // Errors from the coordinator's auth middleware stop socket.io's reconnection: they are fatal,
      // but for a store the coordinator cannot reach for now (a cluster's Redis): try again later.
      if (err.data && isErrorCode(err.data.code)) {
        if (err.data.code === 'STORE_UNAVAILABLE' && !this.closed) {
          this.emit('protocolError', `handshake refused for now (${err.data.message}); retrying`);
          setTimeout(() => {
            if (!this.closed && this.current === socket && !socket.connected) socket.connect();
          }, options.maxReconnectDelayMs ?? 5_000);
          return;
        }
        this.emit('fatal', new TributaryError(err.data.code, err.data.message ?? err.message));
        return;
      }
      // The node is unreachable: after a few tries, the next coordinator of the list (if any).
      if (++this.failures >= (options.failoverAfterErrors ?? 3)) this.failOver();
    });
    // Every coordinator message is validated against the protocol table before anyone sees it.
    this.listen(socket, 'round:task', SERVER_MESSAGES.roundTask.schema, (task) => this.emit('task', task));
    this.listen(socket, 'secagg:request', SERVER_MESSAGES.secaggRequest.schema, (r) =>
      this.deliver('secaggRequest', r),
    );
    this.listen(socket, 'aggregate:decrypt', SERVER_MESSAGES.aggregateDecrypt.schema, (r) =>
      this.deliver('decryptRequest', r),
    );
    this.listen(socket, 'aggregate:ciphertexts', SERVER_MESSAGES.aggregateCiphertexts.schema, (r) =>
      this.deliver('decryptCiphertexts', r),
    );
    this.listen(socket, 'job:finished', SERVER_MESSAGES.jobFinished.schema, (f) => this.emit('jobFinished', f));
    socket.on('tributary:error', (raw: unknown) => this.emit('protocolError', JSON.stringify(raw)));
    for (const [event, listener] of this.messageListeners) (socket as unknown as Socket).on(event, listener);
    return socket;
  }

  /** Emits a mode request, or holds it (at most MAX_HELD per event) while nobody listens yet. */
  private deliver<E extends HeldEvent>(event: E, payload: ConnectionEvents[E][0]): void {
    if (this.listenerCount(event) > 0) {
      (this as EventEmitter).emit(event, payload);
      return;
    }
    const held = this.held.get(event) ?? [];
    if (held.length < MAX_HELD) held.push(payload);
    this.held.set(event, held);
  }

  private listen<T>(
    socket: Socket<ServerToClientEvents, ClientToServerEvents>,
    event: keyof ServerToClientEvents,
    schema: z.ZodType<T>,
    deliver: (value: T) => void,
  ): void {
    (socket as unknown as Socket).on(event, (raw: unknown) => {
      const parsed = schema.safeParse(raw);
      if (parsed.success) deliver(parsed.data);
      else this.emit('protocolError', `Ignored a malformed ${event}: ${parsed.error.issues[0]?.message}`);
    });
  }

  get clientId(): string {
    return this.options.identity.clientId;
  }

  connect(): void {
    this.socket.connect();
  }

  close(): void {
    this.closed = true;
    this.socket.disconnect();
    this.removeAllListeners();
  }

  /** Joins a job (with the payout binding, if any); returns its spec and manifest (validated). */
  async join(jobId: string, payout?: PayoutBinding): Promise<JoinResult> {
    return this.send('joinJob', jobId, 0, payout ? { payout } : {});
  }

  /** Joins a paillier job as its key holder; returns its spec and manifest (validated). */
  async joinAsKeyHolder(jobId: string): Promise<JoinResult> {
    return this.send('keyholderJoin', jobId, 0, {});
  }

  /**
   * Returns a decrypted aggregate (Float32 sums), or the reason it could not be decrypted (`error`),
   * with `refusal` when the key holder refused (a check failed; nothing was decrypted).
   */
  async sendAggregateResult(
    request: Pick<AggregateDecryptRequest, 'jobId' | 'round' | 'attempt' | 'length'>,
    sums: Float32Array | null,
    error?: string,
    refusal?: DecryptRefusalReason,
  ): Promise<void> {
    const body: AggregateResultBody = {
      attempt: request.attempt,
      length: request.length,
      ...(error !== undefined ? { error: error.slice(0, 1000) } : {}),
      ...(refusal !== undefined ? { refusal: { reason: refusal } } : {}),
    };
    const data = sums ? new Uint8Array(sums.buffer, sums.byteOffset, sums.byteLength) : undefined;
    await this.send('aggregateResult', request.jobId, request.round, body, data);
  }

  /**
   * Uploads an encoded update for a task in chunks of the task's size, then commits it (with the
   * mode's extra commit fields, e.g. a paillier submission signature). `updateHash`: the update's
   * SHA-256 hex when the mode already has it (he computes it with its signed digest); else computed here.
   */
  async submitUpdate(
    task: RoundTask,
    update: Uint8Array,
    numExamples: number,
    metrics: Record<string, number>,
    extra: Pick<UpdateCommitBody, 'submissionSignature'> = {},
    updateHash: string = contentHash(update),
  ): Promise<void> {
    const transferId = randomBytes(16).toString('hex');
    const chunks = splitIntoChunks(update, task.chunkBytes);
    for (const [index, chunk] of chunks.entries()) {
      const body = { transferId, index, count: chunks.length, totalBytes: update.length };
      await this.send('updateChunk', task.jobId, task.round, body, chunk);
    }
    const commit = { transferId, updateHash, numExamples, metrics, ...extra };
    await this.send('updateCommit', task.jobId, task.round, commit);
  }

  /** Sends one SecAgg+ reply; `data` is the masked vector at collect-masked-vectors, in parts of at most `partBytes`. */
  async sendSecAggReply(
    request: SecAggRequest,
    reply: string,
    data?: Uint8Array,
    partBytes = MAX_CHUNK_BYTES,
  ): Promise<void> {
    const base: SecAggReplyBody = { attempt: request.attempt, stage: request.stage, reply };
    // At most MAX_SECAGG_PARTS parts of at most one message each.
    const size = Math.min(MAX_CHUNK_BYTES, Math.max(partBytes, Math.ceil((data?.length ?? 0) / MAX_SECAGG_PARTS)));
    if (!data || data.length <= size) {
      await this.send('secaggReply', request.jobId, request.round, base, data);
      return;
    }
    // A masked vector above one part goes in consecutive parts (the round's chunk size), each acknowledged first.
    const parts = splitIntoChunks(data, size);
    for (const [index, part] of parts.entries()) {
      await this.send(
        'secaggReply',
        request.jobId,
        request.round,
        { ...base, part: { index, count: parts.length } },
        part,
      );
    }
  }

  /** Sends one signed message and resolves with the coordinator's result, or throws its coded error. */
  async send<N extends ClientMessageName>(
    name: N,
    jobId: string,
    round: number,
    body: ClientBody<N>,
    data?: Uint8Array,
  ): Promise<ClientResult<N>> {
    const { event, stage } = CLIENT_MESSAGES[name];
    const bodyText = JSON.stringify(body);
    const nonce = newNonce();
    const signature = signFields(this.options.identity.secretKey, {
      jobId,
      round,
      stage,
      payloadHash: payloadHash(bodyText, data),
      nonce,
    });
    const message = {
      jobId,
      round,
      stage,
      nonce,
      signature,
      body: bodyText,
      ...(data ? { data: Buffer.from(data) } : {}),
    };
    if (!this.socket.connected) {
      throw new TributaryError('INTERNAL', `Not connected to the coordinator; ${event} was not sent.`);
    }
    let raw: unknown;
    let onDisconnect: (() => void) | undefined;
    try {
      // An ack lost with the connection never comes: fail fast on disconnect instead of waiting out the timeout.
      const lost = new Promise<never>((_, reject) => {
        onDisconnect = () => reject(new Error('disconnected'));
        this.socket.once('disconnect', onDisconnect);
      });
      const emitted = (this.socket.timeout(this.ackTimeoutMs) as unknown as Socket).emitWithAck(event, message);
      raw = await Promise.race([emitted, lost]);
    } catch (err) {
      throw new TributaryError(
        'INTERNAL',
        `No answer from the coordinator to ${event} (${String((err as Error).message)}).`,
        { cause: err },
      );
    } finally {
      if (onDisconnect) this.socket.off('disconnect', onDisconnect);
    }
    const ack = AckSchema.parse(raw);
    if (!ack.ok) {
      const code = isErrorCode(ack.error.code) ? ack.error.code : 'INTERNAL';
      throw new TributaryError(code, ack.error.message, { details: ack.error.details });
    }
    // The coordinator's answer is a trust boundary too: it must match the table's result schema.
    return CLIENT_MESSAGES[name].result.parse(ack.result) as ClientResult<N>;
  }
}

export type { AggregateCiphertexts, AggregateDecryptRequest, JobFinished, RoundTask, SecAggRequest };
