import type { Server as HttpServer } from 'node:http';
import { Server, type Socket } from 'socket.io';
import { TributaryError, toTributaryError } from '../../shared/errors';
import { NonceCache } from '../../shared/identity/nonceCache';
import { SignatureVerifier, payloadHash } from '../../shared/identity/signing';
import {
  AggregateResultBodySchema,
  EVENTS,
  HandshakeAuthSchema,
  JoinBodySchema,
  MAX_CHUNK_BYTES,
  PROTOCOL_VERSION,
  STAGES,
  SecAggReplyBodySchema,
  SignedMessageSchema,
  UpdateChunkBodySchema,
  UpdateCommitBodySchema,
  type Ack,
  type JoinResult,
} from '../../shared/schemas/messages';
import { verifyPayoutBinding } from '../chain/verifyPayoutBinding';
import type { JobManager } from '../jobs/jobManager';
import type { Logger } from '../logger';
import type { ClientDirectory, ClientLink } from './clientDirectory';

export interface SocketServerOptions {
  authWindowMs: number;
  logger: Logger;
}

/** socket.io's per-message limit: one upload chunk plus room for the envelope. */
const MAX_HTTP_BUFFER_BYTES = MAX_CHUNK_BYTES + 256 * 1024;

interface VerifiedMessage {
  jobId: string;
  round: number;
  body: unknown;
  data: Uint8Array | undefined;
}

/**
 * The socket.io edge. Authenticates each connection (the handshake proves possession of the client's
 * Ed25519 key over a fresh timestamp and nonce), then for every event: schema → signature over
 * (job, round, stage, payload hash, nonce) → nonce not seen before → body schema → the job manager.
 * Every failure is answered with a coded error; nothing a client sends can throw past this layer.
 *
 * maxHttpBufferSize is set just above the upload chunk size: large updates travel as chunks.
 */
export class SocketServer {
  readonly io: Server;
  private readonly verifier = new SignatureVerifier();
  private readonly nonces = new NonceCache();

  constructor(
    httpServer: HttpServer,
    private readonly directory: ClientDirectory,
    private readonly jobs: JobManager,
    private readonly options: SocketServerOptions,
  ) {
    this.io = new Server(httpServer, {
      maxHttpBufferSize: MAX_HTTP_BUFFER_BYTES,
      pingInterval: 10_000,
      pingTimeout: 20_000,
      serveClient: false,
    });
    this.io.use((socket, next) => {
      try {
        socket.data.clientId = this.authenticate(socket.handshake.auth);
        next();
      } catch (err) {
        const e = toTributaryError(err);
        const out = new Error(e.message) as Error & { data: unknown };
        out.data = e.toWire();
        next(out);
      }
    });
    this.io.on('connection', (socket) => this.onConnection(socket));
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.io.close(() => resolve()));
  }

  private authenticate(raw: unknown): string {
    const auth = HandshakeAuthSchema.safeParse(raw);
    if (!auth.success) {
      const version = (raw as { protocolVersion?: unknown } | undefined)?.protocolVersion;
      if (version !== undefined && version !== PROTOCOL_VERSION) {
        throw new TributaryError(
          'PROTOCOL_VERSION_MISMATCH',
          `Expected protocol version ${PROTOCOL_VERSION}, got ${String(version)}.`,
        );
      }
      throw new TributaryError(
        'AUTH_REQUIRED',
        'Expected handshake auth { protocolVersion, publicKey, timestamp, nonce, signature }.',
        {
          cause: auth.error,
        },
      );
    }
    const a = auth.data;
    if (a.protocolVersion !== PROTOCOL_VERSION) {
      throw new TributaryError(
        'PROTOCOL_VERSION_MISMATCH',
        `Expected protocol version ${PROTOCOL_VERSION}, got ${a.protocolVersion}.`,
      );
    }
    if (Math.abs(Date.now() - a.timestamp) > this.options.authWindowMs) {
      throw new TributaryError(
        'AUTH_STALE',
        `The handshake timestamp is more than ${this.options.authWindowMs} ms from the coordinator's clock.`,
      );
    }
    const fields = {
      jobId: '*',
      round: 0,
      stage: 'auth',
      payloadHash: payloadHash(String(a.timestamp)),
      nonce: a.nonce,
    };
    if (!this.verifier.verify(a.publicKey, fields, a.signature)) {
      throw new TributaryError(
        'AUTH_BAD_SIGNATURE',
        'The handshake signature does not verify under the presented public key.',
      );
    }
    if (!this.nonces.checkAndRemember(a.publicKey, a.nonce)) {
      throw new TributaryError('AUTH_REPLAY', 'This handshake nonce was already used.');
    }
    return a.publicKey;
  }

  private onConnection(socket: Socket): void {
    const clientId = socket.data.clientId as string;
    // A reconnecting client replaces its previous connection.
    const previous = this.directory.link(clientId) as (ClientLink & { socket?: Socket }) | undefined;
    if (previous?.socket && previous.socket.id !== socket.id) previous.socket.disconnect(true);
    const link: ClientLink & { socket: Socket } = {
      clientId,
      socket,
      send: (event, payload) => socket.emit(event, payload),
    };
    this.directory.connect(link);
    this.options.logger.debug('client connected', { clientId: clientId.slice(0, 12) });

    this.handle(socket, EVENTS.joinJob, STAGES.join, async (m) => {
      const body = JoinBodySchema.parse(m.body);
      const job = await this.jobs.requireJoinable(m.jobId);
      await this.jobs.assertMayJoin(job, clientId);
      // A paid job pays to the address bound to this key; both binding signatures must verify.
      const payoutAddress = body.payout ? verifyPayoutBinding(clientId, body.payout) : undefined;
      if (job.spec.chain && !payoutAddress) {
        throw new TributaryError(
          'PAYOUT_BINDING_INVALID',
          `Job ${job.id} pays contributors on chain: join with a payout address bound to your key (body.payout).`,
        );
      }
      this.directory.join(clientId, job.id);
      await this.jobs.recordJoin(job.id, clientId, payoutAddress);
      const result: JoinResult = {
        jobId: job.id,
        spec: job.spec,
        status: job.status,
        currentRound: job.currentRound,
        weightManifest: job.weightManifest,
      };
      return result;
    });
    this.handle(socket, EVENTS.updateChunk, STAGES.updateChunk, async (m) => {
      const body = UpdateChunkBodySchema.parse(m.body);
      this.jobs.requireRunner(m.jobId, clientId).handleChunk(clientId, m.round, body, m.data);
      return undefined;
    });
    this.handle(socket, EVENTS.updateCommit, STAGES.updateCommit, async (m) => {
      const body = UpdateCommitBodySchema.parse(m.body);
      this.jobs.requireRunner(m.jobId, clientId).handleCommit(clientId, m.round, body);
      return undefined;
    });
    this.handle(socket, EVENTS.secaggReply, STAGES.secaggReply, async (m) => {
      const body = SecAggReplyBodySchema.parse(m.body);
      this.jobs.requireRunner(m.jobId, clientId).handleSecAggReply(clientId, m.round, body, m.data);
      return undefined;
    });
    // A paillier job's key holder: its client id must be the spec's paillier.keyHolder. It is not a member (never selected).
    this.handle(socket, EVENTS.keyholderJoin, STAGES.keyholderJoin, async (m) => {
      JoinBodySchema.parse(m.body);
      const job = await this.jobs.requireJoinable(m.jobId);
      if (job.spec.secureAggregation !== 'paillier' || job.spec.paillier?.keyHolder !== clientId) {
        throw new TributaryError('PAILLIER_NOT_KEY_HOLDER', `The client is not the key holder of job ${job.id}.`);
      }
      this.jobs.keyHolders.register(job.id, clientId, link);
      const result: JoinResult = {
        jobId: job.id,
        spec: job.spec,
        status: job.status,
        currentRound: job.currentRound,
        weightManifest: job.weightManifest,
      };
      return result;
    });
    this.handle(socket, EVENTS.aggregateResult, STAGES.aggregateResult, async (m) => {
      const body = AggregateResultBodySchema.parse(m.body);
      this.jobs.keyHolders.handleResult(clientId, m.jobId, m.round, body, m.data);
      return undefined;
    });
    socket.onAny((event: string) => {
      if (!(Object.values(EVENTS) as string[]).includes(event)) {
        socket.emit(EVENTS.error, new TributaryError('VALIDATION_FAILED', `Unknown event "${event}".`).toWire());
      }
    });
    socket.on('disconnect', (reason) => {
      this.jobs.keyHolders.unregister(link);
      this.directory.disconnect(clientId, link, reason);
    });
  }

  /** Registers a handler with the full verification pipeline and a coded answer for every outcome. */
  private handle(
    socket: Socket,
    event: string,
    stage: string,
    handler: (m: VerifiedMessage) => Promise<unknown>,
  ): void {
    const clientId = socket.data.clientId as string;
    socket.on(event, async (...args: unknown[]) => {
      const ack = typeof args[args.length - 1] === 'function' ? (args.pop() as (a: Ack) => void) : undefined;
      let reply: Ack;
      try {
        const verified = this.verify(clientId, stage, args[0]);
        reply = { ok: true, result: await handler(verified) };
      } catch (err) {
        const e = toTributaryError(err);
        if (e.code === 'INTERNAL')
          this.options.logger.error('handler failed', { event, message: String((err as Error)?.stack ?? err) });
        reply = { ok: false, error: e.toWire() };
      }
      try {
        if (ack) ack(reply);
        else if (!reply.ok) socket.emit(EVENTS.error, reply.error);
      } catch {
        // The socket may have gone away; nothing else to do.
      }
    });
  }

  private verify(clientId: string, stage: string, raw: unknown): VerifiedMessage {
    const message = SignedMessageSchema.parse(raw);
    if (message.stage !== stage) {
      throw new TributaryError(
        'VALIDATION_FAILED',
        `Expected stage "${stage}" for this event, got "${message.stage}".`,
      );
    }
    const data = message.data
      ? Buffer.from(message.data.buffer, message.data.byteOffset, message.data.byteLength)
      : undefined;
    const fields = {
      jobId: message.jobId,
      round: message.round,
      stage,
      payloadHash: payloadHash(message.body, data),
      nonce: message.nonce,
    };
    if (!this.verifier.verify(clientId, fields, message.signature)) {
      throw new TributaryError(
        'AUTH_BAD_SIGNATURE',
        `The ${stage} message's signature does not verify under the connection's key.`,
      );
    }
    if (!this.nonces.checkAndRemember(clientId, message.nonce)) {
      throw new TributaryError('AUTH_REPLAY', `Nonce ${message.nonce} was already used by this client.`);
    }
    let body: unknown;
    try {
      body = JSON.parse(message.body);
    } catch {
      throw new TributaryError('VALIDATION_FAILED', 'The message body is not valid JSON.');
    }
    return { jobId: message.jobId, round: message.round, body, data };
  }
}
