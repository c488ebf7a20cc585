import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import { io, type Socket } from 'socket.io-client';
import { contentHash } from '../shared/codec/modelCodec';
import { TributaryError, isErrorCode } from '../shared/errors';
import type { Identity } from '../shared/identity/keyPair';
import { newNonce, payloadHash, signFields, type SignedFields } from '../shared/identity/signing';
import {
  AggregateDecryptRequestSchema,
  AckSchema,
  EVENTS,
  JobFinishedSchema,
  JoinResultSchema,
  MAX_CHUNK_BYTES,
  PROTOCOL_VERSION,
  RoundTaskSchema,
  SecAggRequestSchema,
  STAGES,
  type AggregateDecryptRequest,
  type AggregateResultBody,
  type HandshakeAuth,
  type JobFinished,
  type JoinResult,
  type PayoutBinding,
  type RoundTask,
  type SecAggReplyBody,
  type SecAggRequest,
} from '../shared/schemas/messages';

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
}

/** Signs the handshake: proves possession of the key over a fresh timestamp and nonce. */
export function handshakeAuth(identity: Identity, now = Date.now()): HandshakeAuth {
  return handshakeAuthWith(identity.clientId, (fields) => signFields(identity.secretKey, fields), now);
}

/** The handshake with any Ed25519 signer over the same fields (load generators sign with node:crypto). */
export function handshakeAuthWith(
  clientId: string,
  sign: (fields: SignedFields) => string,
  now = Date.now(),
): HandshakeAuth {
  const nonce = newNonce();
  return {
    protocolVersion: PROTOCOL_VERSION,
    publicKey: clientId,
    timestamp: now,
    nonce,
    signature: sign({ jobId: '*', round: 0, stage: 'auth', payloadHash: payloadHash(String(now)), nonce }),
  };
}

/**
 * The client's socket.io connection: authenticates on every (re)connect, signs every message, uploads
 * updates in chunks, and validates what the coordinator sends (its messages are a trust boundary too).
 * socket.io-client reconnects with exponential backoff; listeners of 'connected' rejoin jobs.
 *
 * Events: 'connected', 'disconnected' (reason), 'task' (RoundTask), 'secaggRequest' (SecAggRequest,
 * envelope checked; the payload is validated by the SecAgg+ client), 'decryptRequest'
 * (AggregateDecryptRequest, for a paillier key holder), 'jobFinished' (JobFinished),
 * 'fatal' (TributaryError: the coordinator refused the handshake), 'protocolError' (message).
 */
export class CoordinatorConnection extends EventEmitter {
  readonly socket: Socket;
  private readonly ackTimeoutMs: number;

  constructor(private readonly options: ConnectionOptions) {
    super();
    this.ackTimeoutMs = options.ackTimeoutMs ?? 60_000;
    this.socket = io(options.url, {
      transports: ['websocket'],
      reconnection: true,
      reconnectionDelay: options.reconnectDelayMs ?? 250,
      reconnectionDelayMax: options.maxReconnectDelayMs ?? 5_000,
      randomizationFactor: 0.5,
      // A function, so each reconnect signs a fresh timestamp and nonce.
      auth: (cb) => cb(handshakeAuth(options.identity)),
      autoConnect: false,
    });
    this.socket.on('connect', () => this.emit('connected'));
    this.socket.on('disconnect', (reason) => this.emit('disconnected', reason));
    this.socket.on('connect_error', (err: Error & { data?: { code?: string; message?: string } }) => {
      // Errors from the coordinator's auth middleware stop socket.io's reconnection: they are fatal.
      if (err.data && isErrorCode(err.data.code)) {
        this.emit('fatal', new TributaryError(err.data.code, err.data.message ?? err.message));
      }
    });
    this.socket.on(EVENTS.roundTask, (raw: unknown) => {
      const task = RoundTaskSchema.safeParse(raw);
      if (task.success) this.emit('task', task.data);
      else this.emit('protocolError', `Ignored a malformed round task: ${task.error.issues[0]?.message}`);
    });
    this.socket.on(EVENTS.secaggRequest, (raw: unknown) => {
      const request = SecAggRequestSchema.safeParse(raw);
      if (request.success) this.emit('secaggRequest', request.data);
      else this.emit('protocolError', `Ignored a malformed secagg request: ${request.error.issues[0]?.message}`);
    });
    this.socket.on(EVENTS.aggregateDecrypt, (raw: unknown) => {
      const request = AggregateDecryptRequestSchema.safeParse(raw);
      if (request.success) this.emit('decryptRequest', request.data);
      else this.emit('protocolError', `Ignored a malformed decrypt request: ${request.error.issues[0]?.message}`);
    });
    this.socket.on(EVENTS.jobFinished, (raw: unknown) => {
      const finished = JobFinishedSchema.safeParse(raw);
      if (finished.success) this.emit('jobFinished', finished.data);
    });
    this.socket.on(EVENTS.error, (raw: unknown) => this.emit('protocolError', JSON.stringify(raw)));
  }

  get clientId(): string {
    return this.options.identity.clientId;
  }

  connect(): void {
    this.socket.connect();
  }

  close(): void {
    this.socket.disconnect();
    this.removeAllListeners();
  }

  /** Joins a job (with the payout binding, if any); returns its spec and manifest (validated). */
  async join(jobId: string, payout?: PayoutBinding): Promise<JoinResult> {
    const result = await this.send(EVENTS.joinJob, STAGES.join, jobId, 0, payout ? { payout } : {});
    return JoinResultSchema.parse(result);
  }

  /** Joins a paillier job as its key holder; returns its spec and manifest (validated). */
  async joinAsKeyHolder(jobId: string): Promise<JoinResult> {
    const result = await this.send(EVENTS.keyholderJoin, STAGES.keyholderJoin, jobId, 0, {});
    return JoinResultSchema.parse(result);
  }

  /** Returns a decrypted aggregate (Float32 sums) or the reason it could not be decrypted. */
  async sendAggregateResult(
    request: AggregateDecryptRequest,
    sums: Float32Array | null,
    error?: string,
  ): Promise<void> {
    const body: AggregateResultBody = {
      attempt: request.attempt,
      length: request.length,
      ...(error !== undefined ? { error } : {}),
    };
    const data = sums ? new Uint8Array(sums.buffer, sums.byteOffset, sums.byteLength) : undefined;
    await this.send(EVENTS.aggregateResult, STAGES.aggregateResult, request.jobId, request.round, body, data);
  }

  /** Uploads an encoded update for a task in chunks of the task's size, then commits it. */
  async submitUpdate(
    task: RoundTask,
    update: Uint8Array,
    numExamples: number,
    metrics: Record<string, number>,
  ): Promise<void> {
    const transferId = randomBytes(16).toString('hex');
    const count = Math.ceil(update.length / task.chunkBytes);
    for (let index = 0; index < count; index++) {
      const chunk = update.subarray(index * task.chunkBytes, Math.min(update.length, (index + 1) * task.chunkBytes));
      await this.send(
        EVENTS.updateChunk,
        STAGES.updateChunk,
        task.jobId,
        task.round,
        { transferId, index, count, totalBytes: update.length },
        chunk,
      );
    }
    await this.send(EVENTS.updateCommit, STAGES.updateCommit, task.jobId, task.round, {
      transferId,
      updateHash: contentHash(update),
      numExamples,
      metrics,
    });
  }

  /** Sends one SecAgg+ reply; `data` is the masked vector at collect-masked-vectors. */
  async sendSecAggReply(request: SecAggRequest, reply: string, data?: Uint8Array): Promise<void> {
    if (!data || data.length <= MAX_CHUNK_BYTES) {
      const body: SecAggReplyBody = { attempt: request.attempt, stage: request.stage, reply };
      await this.send(EVENTS.secaggReply, STAGES.secaggReply, request.jobId, request.round, body, data);
      return;
    }
    // A masked vector above one message's limit goes in consecutive parts, each acknowledged first.
    const count = Math.ceil(data.length / MAX_CHUNK_BYTES);
    for (let index = 0; index < count; index++) {
      const body: SecAggReplyBody = { attempt: request.attempt, stage: request.stage, reply, part: { index, count } };
      const part = data.subarray(index * MAX_CHUNK_BYTES, Math.min(data.length, (index + 1) * MAX_CHUNK_BYTES));
      await this.send(EVENTS.secaggReply, STAGES.secaggReply, request.jobId, request.round, body, part);
    }
  }

  /** Sends one signed message and resolves with the coordinator's result, or throws its coded error. */
  async send(
    event: string,
    stage: string,
    jobId: string,
    round: number,
    body: unknown,
    data?: Uint8Array,
  ): Promise<unknown> {
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
      raw = await Promise.race([this.socket.timeout(this.ackTimeoutMs).emitWithAck(event, message), lost]);
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
    return ack.result;
  }
}

export type { AggregateDecryptRequest, JobFinished, RoundTask, SecAggRequest };
