import { io, type Socket } from 'socket.io-client';
import { contentHash } from '../../shared/codec/modelCodec';
import type { Identity } from '../../shared/identity/keyPair';
import { newNonce, payloadHash, signFields } from '../../shared/identity/signing';
import type { RoundTask } from '../../shared/schemas/messages';
import { EVENTS, STAGES } from '../../shared/schemas/protocol';
import { handshakeAuth } from '../../client/coordinatorConnection';

/** A protocol-level client for tests: signs what it is told to, including things a real client never sends. */
export type AckReply = { ok: boolean; result?: unknown; error?: { code: string; message: string } };

export class RawClient {
  socket!: Socket;
  tasks: RoundTask[] = [];
  errors: Array<{ code: string }> = [];
  constructor(
    readonly identity: Identity,
    private readonly url: string,
  ) {}

  async connect(auth: unknown = handshakeAuth(this.identity, this.url)): Promise<void> {
    this.socket = io(this.url, {
      transports: ['websocket'],
      reconnection: false,
      auth: auth as Record<string, unknown>,
    });
    this.socket.on(EVENTS.roundTask, (t: RoundTask) => this.tasks.push(t));
    this.socket.on(EVENTS.error, (e: { code: string }) => this.errors.push(e));
    await new Promise<void>((resolve, reject) => {
      this.socket.once('connect', () => resolve());
      this.socket.once('connect_error', (err: Error & { data?: unknown }) =>
        reject(Object.assign(err, { data: err.data })),
      );
    });
  }

  signed(
    jobId: string,
    round: number,
    stage: string,
    body: unknown,
    data?: Uint8Array,
    overrides: Record<string, unknown> = {},
  ) {
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    const nonce = newNonce();
    const signature = signFields(this.identity.secretKey, {
      jobId,
      round,
      stage,
      payloadHash: payloadHash(text, data),
      nonce,
    });
    return {
      jobId,
      round,
      stage,
      nonce,
      signature,
      body: text,
      ...(data ? { data: Buffer.from(data) } : {}),
      ...overrides,
    };
  }

  /** Acks get 60 s, as the real client's default: a 40 MB commit on a loaded 2-core machine takes seconds. */
  send(event: string, message: unknown): Promise<AckReply> {
    return this.socket.timeout(60_000).emitWithAck(event, message);
  }

  async upload(
    task: RoundTask,
    bytes: Uint8Array,
    numExamples: number,
    opts: { hash?: string; round?: number; metrics?: Record<string, number> } = {},
  ): Promise<AckReply> {
    const transferId = newNonce();
    const count = Math.ceil(bytes.length / task.chunkBytes);
    const round = opts.round ?? task.round;
    for (let index = 0; index < count; index++) {
      const chunk = bytes.subarray(index * task.chunkBytes, (index + 1) * task.chunkBytes);
      const r = await this.send(
        EVENTS.updateChunk,
        this.signed(
          task.jobId,
          round,
          STAGES.updateChunk,
          { transferId, index, count, totalBytes: bytes.length },
          chunk,
        ),
      );
      if (!r.ok) return r;
    }
    return this.send(
      EVENTS.updateCommit,
      this.signed(task.jobId, round, STAGES.updateCommit, {
        transferId,
        updateHash: opts.hash ?? contentHash(bytes),
        numExamples,
        metrics: opts.metrics ?? { loss: 1 },
      }),
    );
  }
}
