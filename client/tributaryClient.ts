import { EventEmitter } from 'node:events';
import { updateEncoderFor } from '../shared/aggregation/updateEncoder';
import { contentHash, decodeTensors } from '../shared/codec/modelCodec';
import type { NamedTensor } from '../shared/codec/tensors';
import type { Dataset } from '../shared/data/dataset';
import { TributaryError, toTributaryError } from '../shared/errors';
import type { Identity } from '../shared/identity/keyPair';
import { selectBackend, type BackendPreference } from '../shared/ml/backend';
import { buildModel } from '../shared/ml/modelZoo';
import { trainLocal } from '../shared/ml/train';
import { getNamedWeights, setNamedWeights } from '../shared/ml/weights';
import type { JoinResult } from '../shared/schemas/messages';
import { CoordinatorConnection, type JobFinished, type RoundTask } from './coordinatorConnection';
import { assertDatasetFitsInput } from './datasetCheck';

export interface TributaryClientOptions {
  /** Coordinator base URL. */
  url: string;
  jobId: string;
  identity: Identity;
  /** The provider's private data, already loaded and validated against the job's input spec. */
  dataset: Dataset;
  /** TF.js backend. @default "auto" */
  backend?: BackendPreference;
  /** @default 250 */
  reconnectDelayMs?: number;
  /** @default 5000 */
  maxReconnectDelayMs?: number;
}

export interface RoundTrainedEvent {
  round: number;
  numExamples: number;
  loss: number;
  accuracy: number;
  trainSeconds: number;
}

type TfModel = Awaited<ReturnType<typeof buildModel>>;

/**
 * A data provider: joins a job, and for each round task downloads the global model (hash-checked),
 * trains on local data, and uploads only the encoded model delta. Reconnects with backoff and rejoins
 * after a coordinator restart. Raw data never leaves this process.
 *
 * Events: 'joined' (JoinResult), 'roundTrained' (RoundTrainedEvent), 'warning' (string), 'backend' (name).
 */
export class TributaryClient extends EventEmitter {
  private connection: CoordinatorConnection | null = null;
  private model: TfModel | null = null;
  private modelBuild: Promise<TfModel> | null = null;
  private joined: JoinResult | null = null;
  private queue: Promise<void> = Promise.resolve();
  private markReady!: () => void;
  /** Resolves once the first join has built the model: a task can arrive before that. */
  private readonly ready = new Promise<void>((resolve) => (this.markReady = resolve));
  backendName = '';

  constructor(private readonly options: TributaryClientOptions) {
    super();
  }

  get clientId(): string {
    return this.options.identity.clientId;
  }

  /** Runs until the job finishes (resolves with its final status) or the coordinator refuses us (rejects). */
  async run(): Promise<JobFinished> {
    const backend = await selectBackend(this.options.backend ?? 'auto');
    this.backendName = backend.name;
    this.emit('backend', backend.name);
    const conn = new CoordinatorConnection({
      url: this.options.url,
      identity: this.options.identity,
      reconnectDelayMs: this.options.reconnectDelayMs,
      maxReconnectDelayMs: this.options.maxReconnectDelayMs,
    });
    this.connection = conn;
    try {
      return await new Promise<JobFinished>((resolve, reject) => {
        conn.on('fatal', reject);
        conn.on('jobFinished', (f: JobFinished) => {
          if (f.jobId === this.options.jobId) resolve(f);
        });
        conn.on('protocolError', (m: string) => this.emit('warning', m));
        conn.on('connected', () => {
          this.joinJob().then((finished) => finished && resolve(finished), reject);
        });
        conn.on('task', (task: RoundTask) => {
          // Tasks run one at a time; a newer task for the same job supersedes nothing: each is answered.
          this.queue = this.queue.then(() => this.handleTask(task)).catch((err) => {
            this.emit('warning', `round ${task.round} not submitted: ${String(err)}`);
          });
        });
        conn.connect();
      });
    } finally {
      this.close();
    }
  }

  close(): void {
    this.connection?.close();
    this.connection = null;
    this.model?.dispose();
    this.model = null;
  }

  /** Joins (or rejoins after a reconnect). Resolves with a JobFinished if the job is already over. */
  private async joinJob(): Promise<JobFinished | null> {
    const conn = this.connection;
    if (!conn) return null;
    let joined: JoinResult;
    try {
      joined = await conn.join(this.options.jobId);
    } catch (err) {
      const e = toTributaryError(err);
      if (e.code === 'JOB_NOT_RUNNING') {
        const status = (e.details as { status?: string } | undefined)?.status === 'completed' ? 'completed' : 'failed';
        return { jobId: this.options.jobId, status, reason: e.message };
      }
      // Transient (lost connection, store hiccup): the next 'connected' rejoins, or retry while still connected.
      if (e.code === 'INTERNAL' || e.code === 'STORE_UNAVAILABLE') {
        this.emit('warning', `join failed (${e.message}); retrying`);
        await new Promise((r) => setTimeout(r, 1_000));
        return conn === this.connection && conn.socket.connected ? this.joinJob() : null;
      }
      throw e;
    }
    if (!this.model) {
      // Reconnects during the first build must not build a second model.
      this.modelBuild ??= (async () => {
        assertDatasetFitsInput(this.options.dataset, joined.spec.input);
        return buildModel(joined.spec.model, joined.spec.input, joined.spec.seed);
      })();
      this.model = await this.modelBuild;
    }
    this.joined = joined;
    this.markReady();
    this.emit('joined', joined);
    return null;
  }

  private async handleTask(task: RoundTask): Promise<void> {
    await this.ready;
    const conn = this.connection;
    const joined = this.joined;
    const model = this.model;
    if (!conn || !joined || !model || task.jobId !== this.options.jobId) return;
    if (Date.now() > task.deadline) {
      this.emit('warning', `skipped round ${task.round}: its deadline passed before training started`);
      return;
    }
    const global = await this.downloadModel(task, joined);
    setNamedWeights(model, global);
    const started = Date.now();
    const result = await trainLocal(model, this.options.dataset, task.config, task.config.proximalMu > 0 ? global : undefined);
    const local = getNamedWeights(model);
    const delta: NamedTensor[] = local.map((t, i) => {
      const g = global[i].data;
      const d = new Float32Array(t.data.length);
      for (let j = 0; j < d.length; j++) d[j] = t.data[j] - g[j];
      return { name: t.name, shape: t.shape, data: d };
    });
    const payload = updateEncoderFor(joined.spec.secureAggregation).encode(delta, result.numExamples);
    await conn.submitUpdate(task, payload, result.numExamples, { loss: result.loss, accuracy: result.accuracy });
    this.emit('roundTrained', {
      round: task.round,
      numExamples: result.numExamples,
      loss: result.loss,
      accuracy: result.accuracy,
      trainSeconds: (Date.now() - started) / 1000,
    } satisfies RoundTrainedEvent);
  }

  private async downloadModel(task: RoundTask, joined: JoinResult): Promise<NamedTensor[]> {
    const response = await fetch(new URL(task.modelPath, this.options.url));
    if (!response.ok) throw new TributaryError('JOB_NO_MODEL', `Model download failed with HTTP ${response.status}.`);
    const bytes = new Uint8Array(await response.arrayBuffer());
    if (contentHash(bytes) !== task.modelHash) {
      throw new TributaryError('TRANSFER_HASH_MISMATCH', `The downloaded model does not hash to ${task.modelHash}.`);
    }
    return decodeTensors(bytes, { expected: joined.weightManifest });
  }
}
