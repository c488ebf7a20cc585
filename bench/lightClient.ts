import type { Socket } from 'socket.io-client';
import {
  CLIENT_MESSAGES,
  type ClientBody,
  type ClientMessageName,
  type ClientResult,
} from '../shared/schemas/protocol';
import { CoordinatorConnection, type RoundTask } from '../client/coordinatorConnection';
import { encodeTensors } from '../shared/codec/modelCodec';
import { contentHash, decodeTensors } from '../shared/codec/modelCodec';
import type { TensorManifestEntry } from '../shared/codec/tensors';
import { TributaryError, isErrorCode } from '../shared/errors';
import { newNonce, payloadHash } from '../shared/identity/signing';
import { AckSchema } from '../shared/schemas/messages';
import { type FastIdentity, fastHandshakeAuth, fastSignFields } from './fastIdentity';

/** What a light client saw in one round. */
export interface LightRound {
  round: number;
  /** Task received → update committed (acknowledged), ms. */
  latencyMs: number;
  /** Synchronous work this client did on the shared event loop (decode, encode, sign, emit), ms. */
  busyMs: number;
}

/**
 * A protocol-complete client that trains nothing: for each task it downloads the global model over
 * HTTP (hash checked, decoded against the manifest, as TributaryClient does), answers with an all-zero
 * delta encoded by the job's update encoder, and uploads it through the real CoordinatorConnection
 * (chunks + commit, every message signed and acknowledged). Its training time is 0 by construction,
 * so a round's wall time is coordinator work plus this client's protocol work.
 *
 * Signing uses node:crypto (byte-identical Ed25519 signatures to the client's tweetnacl, ~100x faster),
 * so the load generator's CPU in the coordinator's process stays small and is measured (busyMs).
 */
export class LightClient extends CoordinatorConnection {
  readonly rounds: LightRound[] = [];
  readonly errors: string[] = [];
  /** Why the connection dropped, each time it did. */
  readonly disconnects: string[] = [];
  private manifest: TensorManifestEntry[] = [];
  private joining: Promise<void> = Promise.resolve();
  /** Synchronous ms per round: the next round's task can arrive before this round's last ack. */
  private readonly busy = new Map<number, number>();

  constructor(
    private readonly url: string,
    private readonly fast: FastIdentity,
    private readonly numExamples = 50,
  ) {
    super({ url, identity: fast, reconnectDelayMs: 250, maxReconnectDelayMs: 2_000, ackTimeoutMs: 60_000 });
    this.socket.auth = (cb: (data: object) => void) => cb(fastHandshakeAuth(fast, url));
    this.on('disconnected', (reason: string) => this.disconnects.push(reason));
    this.on('task', (task: RoundTask) => {
      this.answer(task).catch((err) =>
        this.errors.push(`round ${task.round}: ${String((err as Error).message ?? err)}`),
      );
    });
  }

  /** Connects and resolves once the socket is up (rejects on a refused handshake or after `timeoutMs`). */
  async open(timeoutMs = 30_000): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`not connected within ${timeoutMs} ms`)), timeoutMs);
      this.once('connected', () => {
        clearTimeout(timer);
        resolve();
      });
      this.once('fatal', (err: Error) => {
        clearTimeout(timer);
        reject(err);
      });
      this.connect();
    });
  }

  async joinJob(jobId: string): Promise<void> {
    this.joining = this.join(jobId).then((joined) => {
      this.manifest = joined.weightManifest;
    });
    await this.joining;
  }

  private async answer(task: RoundTask): Promise<void> {
    const received = performance.now();
    // The round can start (and its task arrive) before this client's join acknowledgement.
    await this.joining;
    const response = await fetch(new URL(task.modelPath, this.url));
    if (!response.ok) throw new TributaryError('JOB_NO_MODEL', `model download failed with HTTP ${response.status}`);
    const bytes = new Uint8Array(await response.arrayBuffer());
    const t0 = performance.now();
    if (contentHash(bytes) !== task.modelHash)
      throw new TributaryError('TRANSFER_HASH_MISMATCH', 'model hash mismatch');
    const global = decodeTensors(bytes, { expected: this.manifest });
    const delta = global.map((t) => ({ name: t.name, shape: t.shape, data: new Float32Array(t.data.length) }));
    const payload = encodeTensors(delta);
    this.addBusy(task.round, performance.now() - t0);
    await this.submitUpdate(task, payload, this.numExamples, { loss: 0, accuracy: 0 });
    this.rounds.push({
      round: task.round,
      latencyMs: performance.now() - received,
      busyMs: this.busy.get(task.round) ?? 0,
    });
    this.busy.delete(task.round);
  }

  private addBusy(round: number, ms: number): void {
    this.busy.set(round, (this.busy.get(round) ?? 0) + ms);
  }

  /** CoordinatorConnection.send with the node:crypto signer; same message, same checks on the ack. */
  override async send<N extends ClientMessageName>(
    name: N,
    jobId: string,
    round: number,
    body: ClientBody<N>,
    data?: Uint8Array,
  ): Promise<ClientResult<N>> {
    const { event, stage } = CLIENT_MESSAGES[name];
    const t0 = performance.now();
    const bodyText = JSON.stringify(body);
    const nonce = newNonce();
    const signature = fastSignFields(this.fast, {
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
    if (!this.socket.connected)
      throw new TributaryError('INTERNAL', `Not connected to the coordinator; ${event} was not sent.`);
    const pending = (this.socket.timeout(60_000) as unknown as Socket).emitWithAck(event, message);
    this.addBusy(round, performance.now() - t0);
    const ack = AckSchema.parse(await pending);
    if (!ack.ok) {
      throw new TributaryError(isErrorCode(ack.error.code) ? ack.error.code : 'INTERNAL', ack.error.message, {
        details: ack.error.details,
      });
    }
    return CLIENT_MESSAGES[name].result.parse(ack.result) as ClientResult<N>;
  }
}
