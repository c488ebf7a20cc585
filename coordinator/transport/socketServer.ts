import type { Server as HttpServer } from 'node:http';
import { RateLimiterMemory, type RateLimiterRes } from 'rate-limiter-flexible';
import { Server, type Socket } from 'socket.io';
import { TributaryError, toTributaryError } from '../../shared/errors';
import { handshakePayloadHash, payloadHash, SignatureVerifier } from '../../shared/identity/signing';
import { TimedNonceCache } from '../../shared/identity/timedNonceCache';
import {
  type Ack,
  HandshakeAuthSchema,
  MAX_CHUNK_BYTES,
  PROTOCOL_VERSION,
  SignedMessageSchema,
} from '../../shared/schemas/messages';
import {
  CLIENT_MESSAGES,
  type ClientMessageName,
  type ClientToServerEvents,
  clientMessageNamed,
  type ServerToClientEvents,
  type SocketData,
} from '../../shared/schemas/protocol';
import type { RoleMessage, RoundMessage } from '../aggregation/aggregationMode';
import type { JobManager } from '../jobs/jobManager';
import type { Logger } from '../logger';
import type { ClientDirectory, ClientLink } from './clientDirectory';

export interface SocketServerOptions {
  authWindowMs: number;
  logger: Logger;
  /** The origins this coordinator answers to (a handshake names one of them). */
  audiences: () => ReadonlySet<string>;
  /** Most signed messages one connection may send; its nonces are kept for the connection's life. @default 1,000,000 */
  maxMessagesPerConnection?: number;
  /** Told of every message's outcome (`ok` or its error code) and size (metrics). */
  onMessage?: (event: string, outcome: string, bytes: number) => void;
  /** Socket connections (handshakes) allowed per IP address per minute. @default 600 */
  connectionsPerIpPerMinute?: number;
  /** Socket connections allowed per client key per minute (a reconnect loop, or someone replaying). @default 30 */
  connectionsPerKeyPerMinute?: number;
  /** Told when a connection is refused by a rate limit (metrics). */
  onRateLimited?: (limiter: string) => void;
  /**
   * A cluster (coordinator/cluster): handshake nonces are also claimed cluster-wide (Redis SET NX
   * PX), so a handshake replayed at another node that answers to the same audience (several nodes
   * behind one load balancer URL) is refused; and each key keeps one connection in the whole cluster
   * (a new one closes the key's connections on other nodes, through the adapter's per-client rooms).
   * @default a single coordinator
   */
  cluster?: { claimNonce(id: string, ttlMs: number): Promise<boolean> };
}

/**
 * Sent to the other nodes of a cluster (socket.io serverSideEmit through the adapter) when a key
 * connects: each closes that key's connections whose handshake came earlier. Ordered by the
 * handshakes the key signed (its own clock, then the nonce), not by arrival: a notice that Redis
 * delivers late must not close the key's newer connection.
 */
export interface ConnectionNotice {
  clientId: string;
  timestamp: number;
  nonce: string;
}

/** The events nodes of a cluster send each other. */
export interface ClusterEvents {
  'tributary:connected': (notice: ConnectionNotice) => void;
}

/** Whether handshake `a` was signed before handshake `b` of the same key. */
function signedBefore(
  a: Pick<ConnectionNotice, 'timestamp' | 'nonce'>,
  b: Pick<ConnectionNotice, 'timestamp' | 'nonce'>,
) {
  return a.timestamp < b.timestamp || (a.timestamp === b.timestamp && a.nonce < b.nonce);
}

/** socket.io's per-message limit: one upload chunk plus room for the envelope. */
const MAX_HTTP_BUFFER_BYTES = MAX_CHUNK_BYTES + 256 * 1024;

type TributarySocket = Socket<ClientToServerEvents, ServerToClientEvents, ClusterEvents, SocketData>;

/** A message whose envelope, signature and nonce were checked. */
interface VerifiedMessage {
  jobId: string;
  round: number;
  body: unknown;
  data: Uint8Array | undefined;
}

/**
 * The socket.io edge. Authenticates each connection (the handshake proves possession of the client's
 * Ed25519 key over a fresh timestamp and nonce), then for every message of the protocol table
 * (shared/schemas/protocol.ts): envelope schema → signature over (job, round, stage, payload hash,
 * nonce) → nonce not seen before → body schema → routed by the table: `join` to the job manager,
 * `round` to the job's running round, `role` to the job's aggregation mode. The edge only verifies,
 * routes and answers; admission rules live with the job manager and the modes. Every failure is
 * answered with a coded error; nothing a client sends can throw past this layer.
 *
 * maxHttpBufferSize is set just above the upload chunk size: large updates travel as chunks.
 */
export class SocketServer {
  readonly io: Server<ClientToServerEvents, ServerToClientEvents, ClusterEvents, SocketData>;
  private readonly verifier = new SignatureVerifier();
  /** Handshake nonces, for as long as their timestamps can pass the window. */
  private readonly handshakeNonces: TimedNonceCache;
  private readonly perIp: RateLimiterMemory;
  private readonly perKey: RateLimiterMemory;
  /** Handshakes signed before this moment (before a restart) are refused: no replay across restarts. */
  private readonly startedAt = Date.now();

  constructor(
    httpServer: HttpServer,
    private readonly directory: ClientDirectory,
    private readonly jobs: JobManager,
    private readonly options: SocketServerOptions,
  ) {
    this.handshakeNonces = new TimedNonceCache(options.authWindowMs);
    this.perIp = new RateLimiterMemory({ points: options.connectionsPerIpPerMinute ?? 600, duration: 60 });
    this.perKey = new RateLimiterMemory({ points: options.connectionsPerKeyPerMinute ?? 30, duration: 60 });
    this.io = new Server(httpServer, {
      maxHttpBufferSize: MAX_HTTP_BUFFER_BYTES,
      pingInterval: 10_000,
      pingTimeout: 20_000,
      serveClient: false,
    });
    this.io.use(async (socket, next) => {
      try {
        // Per IP before any signature work; per key after the handshake proved the key.
        await this.limit(this.perIp, socket.handshake.address, 'socket-ip');
        const clientId = this.authenticate(socket.handshake.auth);
        if (this.options.cluster) {
          const { nonce } = socket.handshake.auth as { nonce: string };
          // A nonce lives as long as its timestamp can pass the window (TimedNonceCache's bound).
          if (!(await this.options.cluster.claimNonce(`hs:${clientId}:${nonce}`, 2 * this.options.authWindowMs))) {
            throw new TributaryError('AUTH_REPLAY', 'This handshake nonce was already used at a node of this cluster.');
          }
        }
        await this.limit(this.perKey, clientId, 'socket-key');
        socket.data.clientId = clientId;
        next();
      } catch (err) {
        const e = toTributaryError(err);
        const out = new Error(e.message) as Error & { data: unknown };
        out.data = e.toWire();
        next(out);
      }
    });
    this.io.on('connection', (socket) => this.onConnection(socket));
    // A cluster: another node accepted a connection of some key; an older one of that key here closes.
    if (options.cluster) this.io.on('tributary:connected', (notice: unknown) => this.onConnectedElsewhere(notice));
  }

  private onConnectedElsewhere(notice: unknown): void {
    const n = notice as Partial<ConnectionNotice> | null;
    if (typeof n?.clientId !== 'string' || typeof n.timestamp !== 'number' || typeof n.nonce !== 'string') return;
    const local = this.sockets.get(n.clientId);
    if (local && signedBefore(handshakeOf(local), n as ConnectionNotice)) local.disconnect(true);
  }

  /** Takes one point for `key`, or refuses with RATE_LIMITED and the time to wait. */
  private async limit(limiter: RateLimiterMemory, key: string, name: string): Promise<void> {
    try {
      await limiter.consume(key);
    } catch (res) {
      const retryAfterMs = (res as RateLimiterRes).msBeforeNext ?? 60_000;
      this.options.onRateLimited?.(name);
      throw new TributaryError('RATE_LIMITED', `Too many connections; retry in ${Math.ceil(retryAfterMs / 1000)} s.`, {
        details: { retryAfterMs },
      });
    }
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
        { cause: auth.error },
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
    if (a.timestamp < this.startedAt) {
      throw new TributaryError(
        'AUTH_STALE',
        'The handshake was signed before this coordinator started; sign a new one.',
      );
    }
    const fields = {
      jobId: '*',
      round: 0,
      stage: 'auth',
      payloadHash: handshakePayloadHash(a.timestamp, a.audience),
      nonce: a.nonce,
    };
    if (!this.verifier.verify(a.publicKey, fields, a.signature)) {
      throw new TributaryError(
        'AUTH_BAD_SIGNATURE',
        'The handshake signature does not verify under the presented public key.',
      );
    }
    // After the signature: only a key's holder can make a handshake name another coordinator.
    if (!this.options.audiences().has(a.audience)) {
      throw new TributaryError(
        'AUTH_AUDIENCE_MISMATCH',
        `The handshake is for ${a.audience.slice(0, 100)}; this coordinator answers to ${[...this.options.audiences()].join(', ')}.`,
      );
    }
    if (!this.handshakeNonces.checkAndRemember(a.publicKey, a.nonce)) {
      throw new TributaryError('AUTH_REPLAY', 'This handshake nonce was already used.');
    }
    return a.publicKey;
  }

  private onConnection(socket: TributarySocket): void {
    const clientId = socket.data.clientId;
    const link: ClientLink = {
      clientId,
      send: (event, payload) => socket.emit(event, ...([payload] as Parameters<ServerToClientEvents[typeof event]>)),
      close: () => socket.disconnect(true),
    };
    // A reconnecting client replaces its previous connection.
    const previous = this.sockets.get(clientId);
    if (previous && previous.id !== socket.id) previous.disconnect(true);
    this.sockets.set(clientId, socket);
    if (this.options.cluster) {
      // One connection per key in the whole cluster: the key's older connections on other nodes close.
      this.io.serverSideEmit('tributary:connected', { clientId, ...handshakeOf(socket) });
    }
    this.directory.connect(link);
    this.options.logger.debug('client connected', { clientId: clientId.slice(0, 12) });

    // Message nonces live as long as the connection: only this key's holder can open one, so a replay
    // could only come on this connection, and closing it frees them.
    const nonces = new Set<string>();
    for (const name of Object.keys(CLIENT_MESSAGES) as ClientMessageName[]) this.handle(socket, link, name, nonces);
    socket.onAny((event: string) => {
      if (!clientMessageNamed(event)) {
        socket.emit('tributary:error', new TributaryError('VALIDATION_FAILED', `Unknown event "${event}".`).toWire());
      }
    });
    socket.on('disconnect', (reason) => {
      if (this.sockets.get(clientId) === socket) this.sockets.delete(clientId);
      this.jobs.connectionClosed(link);
      this.directory.disconnect(clientId, link, reason);
    });
  }

  /** The current socket of each connected client (a reconnect replaces it). */
  private readonly sockets = new Map<string, TributarySocket>();

  /** Registers one message of the table with the full verification pipeline and a coded answer for every outcome. */
  private handle(socket: TributarySocket, link: ClientLink, name: ClientMessageName, nonces: Set<string>): void {
    const definition = CLIENT_MESSAGES[name];
    const clientId = socket.data.clientId;
    const listener = async (...args: unknown[]) => {
      const ack = typeof args[args.length - 1] === 'function' ? (args.pop() as (a: Ack) => void) : undefined;
      let reply: Ack;
      try {
        const verified = this.verify(clientId, definition.stage, args[0], nonces);
        const body = definition.body.parse(verified.body);
        reply = { ok: true, result: await this.route(clientId, link, name, verified, body) };
      } catch (err) {
        const e = toTributaryError(err);
        if (e.code === 'INTERNAL') {
          this.options.logger.error('handler failed', {
            event: definition.event,
            message: String((err as Error)?.stack ?? err),
          });
        }
        reply = { ok: false, error: e.toWire() };
      }
      const raw = args[0] as { body?: unknown; data?: { length?: number } } | undefined;
      const bytes = (typeof raw?.body === 'string' ? raw.body.length : 0) + (raw?.data?.length ?? 0);
      this.options.onMessage?.(definition.event, reply.ok ? 'ok' : reply.error.code, bytes);
      try {
        if (ack) ack(reply);
        else if (!reply.ok) socket.emit('tributary:error', reply.error);
      } catch {
        // The socket may have gone away; nothing else to do.
      }
    };
    socket.on(definition.event, listener as never);
  }

  /** Where the table sends a verified message. */
  private async route(
    clientId: string,
    link: ClientLink,
    name: ClientMessageName,
    m: VerifiedMessage,
    body: unknown,
  ): Promise<unknown> {
    const route = CLIENT_MESSAGES[name].route;
    if (route === 'join') return this.jobs.join(m.jobId, clientId, body as { payout?: never });
    const message = { name, body, data: m.data };
    if (route === 'round') {
      this.jobs.receiveRoundMessage(clientId, m.jobId, m.round, message as RoundMessage);
      return undefined;
    }
    return this.jobs.handleRoleMessage(clientId, link, m.jobId, m.round, message as RoleMessage);
  }

  private verify(clientId: string, stage: string, raw: unknown, nonces: Set<string>): VerifiedMessage {
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
    if (nonces.has(message.nonce)) {
      throw new TributaryError('AUTH_REPLAY', `Nonce ${message.nonce} was already used by this client.`);
    }
    if (nonces.size >= (this.options.maxMessagesPerConnection ?? 1_000_000)) {
      throw new TributaryError('RATE_LIMITED', 'This connection sent too many messages; reconnect to continue.');
    }
    nonces.add(message.nonce);
    let body: unknown;
    try {
      body = JSON.parse(message.body);
    } catch {
      throw new TributaryError('VALIDATION_FAILED', 'The message body is not valid JSON.');
    }
    return { jobId: message.jobId, round: message.round, body, data };
  }
}

/** The signed time and nonce of a socket's handshake (checked by the auth middleware before any connection). */
function handshakeOf(socket: TributarySocket): Pick<ConnectionNotice, 'timestamp' | 'nonce'> {
  const { timestamp, nonce } = socket.handshake.auth as { timestamp: number; nonce: string };
  return { timestamp, nonce };
}
