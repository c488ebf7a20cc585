import { EventEmitter } from 'node:events';
import { canonicalSpecHash } from '../contracts/escrowBinding';
import { flattenByManifest } from '../shared/codec/manifestVector';
import { contentHash, decodeTensors, encodedByteLength } from '../shared/codec/modelCodec';
import type { NamedTensor } from '../shared/codec/tensors';
import type { Dataset } from '../shared/data/dataset';
import { TributaryError } from '../shared/errors';
import { defaultHeEncryptionThreads } from '../shared/he/encryptionWorkers';
import type { Identity } from '../shared/identity/keyPair';
import { type BackendPreference, selectBackend } from '../shared/ml/backend';
import { buildModel } from '../shared/ml/modelZoo';
import { trainLocal } from '../shared/ml/train';
import { getNamedWeights, setNamedWeights } from '../shared/ml/weights';
import type { JoinResult, PayoutBinding } from '../shared/schemas/messages';
import { CoordinatorConnection, type JobFinished, type RoundTask } from './coordinatorConnection';
import { assertDatasetFitsInput } from './datasetCheck';
import { isJobFinished, joinOrFinish } from './joinJob';
import { describeFailure, rateLimitedError, withNetworkRetries } from './networkRetry';
import { readAtMost } from './readAtMost';
import { createSignedFetch, type SignedFetch } from './signedFetch';
import type {
  ClientAggregationMode,
  ClientModeSession,
  ModeStep,
  ModeStepFailure,
  TrainedUpdate,
} from './updates/clientAggregationMode';
import { clientModeFor } from './updates/registry';

export interface TributaryClientOptions {
  /** Coordinator base URL. */
  url: string;
  /** Other coordinators of the same cluster, to fail over to (ConnectionOptions.alternativeUrls). @default none */
  alternativeUrls?: string[];
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
  /** Worker threads for Paillier encryption (paillier jobs). @default 1 */
  paillierThreads?: number;
  /**
   * Worker threads for lattice encryption (he jobs); each update is cut into one slice per thread.
   * @default defaultHeEncryptionThreads(): min(2, cores − 1), at least 1 (docs/secure-aggregation.md)
   */
  heThreads?: number;
  /**
   * The payout address bound to `identity` (client/payoutBinding.ts `createPayoutBinding`), sent at join;
   * jobs with a `chain` config refuse joins without one.
   */
  payout?: PayoutBinding;
  /**
   * The canonical hash (contracts/escrowBinding.ts `canonicalSpecHash`; a paid job's escrow `specHash`)
   * of the spec this provider agreed to, e.g. as the buyer published it. A join result whose spec hashes
   * otherwise (a coordinator serving `none`, or its own key holder's key) is refused with
   * JOB_SPEC_MISMATCH before anything is trained or sent. @default none: the served spec is trusted
   */
  expectedSpecHash?: string;
  /**
   * The provider consents to send its updates in the clear to the coordinator (mode `none`, research
   * federations). Without it a job whose served mode reveals updates is refused with JOB_SPEC_MISMATCH
   * before anything is trained or sent, whatever spec the coordinator serves. @default false
   */
  allowPlaintext?: boolean;
}

export interface RoundTrainedEvent {
  round: number;
  numExamples: number;
  loss: number;
  accuracy: number;
  trainSeconds: number;
}

/** The client's events, typed. */
export interface TributaryClientEvents {
  joined: [joined: JoinResult];
  roundTrained: [trained: RoundTrainedEvent];
  warning: [message: string];
  backend: [name: string];
  /** The aggregation mode is about to answer a protocol step (e.g. a SecAgg+ stage). */
  modeStep: [step: ModeStep];
  /**
   * The aggregation mode refused or failed a protocol step, with the error's code (e.g. a SecAgg+
   * client aborting at SECAGG_SIGNATURE_INVALID). A 'warning' with the code and message comes too.
   */
  modeStepFailed: [failure: ModeStepFailure];
}

type TfModel = Awaited<ReturnType<typeof buildModel>>;

/**
 * A data provider: joins a job, and for each round task downloads the global model (hash-checked),
 * trains on local data, and hands the delta to the job's aggregation mode (client/updates/), which
 * decides how it leaves this process: uploaded (`none`), masked stage by stage (`secagg`) or
 * encrypted (`paillier`). Reconnects with backoff and rejoins after a coordinator restart. Raw data
 * never leaves this process.
 */
export class TributaryClient extends EventEmitter<TributaryClientEvents> {
  private connection: CoordinatorConnection | null = null;
  private model: TfModel | null = null;
  private modelBuild: Promise<TfModel> | null = null;
  private joined: JoinResult | null = null;
  private mode: ClientModeSession | null = null;
  private openedMode!: (mode: ClientModeSession) => void;
  private readonly modeOpened = new Promise<ClientModeSession>((resolve) => (this.openedMode = resolve));
  private queue: Promise<void> = Promise.resolve();
  private markReady!: () => void;
  /** Resolves once the first join has built the model: a task can arrive before that. */
  private readonly ready = new Promise<void>((resolve) => (this.markReady = resolve));
  backendName = '';

  private readonly signedFetch: SignedFetch;

  constructor(private readonly options: TributaryClientOptions) {
    super();
    this.signedFetch = createSignedFetch(options.identity);
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
      ...(this.options.alternativeUrls ? { alternativeUrls: this.options.alternativeUrls } : {}),
      identity: this.options.identity,
      reconnectDelayMs: this.options.reconnectDelayMs,
      maxReconnectDelayMs: this.options.maxReconnectDelayMs,
    });
    this.connection = conn;
    try {
      return await new Promise<JobFinished>((resolve, reject) => {
        conn.on('fatal', reject);
        conn.on('jobFinished', (f) => {
          if (f.jobId === this.options.jobId) resolve(f);
        });
        conn.on('protocolError', (m) => this.emit('warning', m));
        conn.on('connected', () => {
          this.joinJob().then((finished) => finished && resolve(finished), reject);
        });
        conn.on('task', (task) => this.onTask(task));
        conn.connect();
      });
    } finally {
      this.close();
    }
  }

  close(): void {
    this.mode?.close();
    this.mode = null;
    this.connection?.close();
    this.connection = null;
    this.model?.dispose();
    this.model = null;
  }

  /**
   * The update this client sends for a task: the trained delta. Research subclasses (planted
   * behaviours, client/plantedClient.ts) override it; production code never does.
   */
  protected deltaToSend(_global: readonly NamedTensor[], trained: NamedTensor[], _task: RoundTask): NamedTensor[] {
    return trained;
  }

  /** The example count this client declares for a task: the one it trained on (research subclasses lie). */
  protected examplesToClaim(trained: number, _task: RoundTask): number {
    return trained;
  }

  /** The client half of a job's mode: the registry's (research subclasses run modified halves). */
  protected aggregationModeFor(name: string): ClientAggregationMode {
    return clientModeFor(name);
  }

  /**
   * Tasks train one at a time; each training is handed to the mode as soon as it is open (a task can
   * arrive in the same network read as the join acknowledgement, before the mode exists).
   */
  private onTask(task: RoundTask): void {
    const training = this.queue.then(() => this.train(task));
    this.queue = training.then(
      () => undefined,
      () => undefined,
    );
    this.modeOpened
      .then((mode) => mode.onTask(task, training))
      .catch((err) => this.emit('warning', `round ${task.round} not submitted: ${describeFailure(err)}`));
  }

  /** Joins (or rejoins after a reconnect). Resolves with a JobFinished if the job is already over. */
  private async joinJob(): Promise<JobFinished | null> {
    const conn = this.connection;
    if (!conn) return null;
    const outcome = await joinOrFinish(
      conn,
      this.options.jobId,
      () => conn.join(this.options.jobId, this.options.payout),
      () => conn === this.connection,
      (m) => this.emit('warning', m),
    );
    if (outcome === null || isJobFinished(outcome)) return outcome;
    const joined = outcome;
    this.assertAgreedSpec(joined);
    const mode = this.aggregationModeFor(joined.spec.secureAggregation);
    this.assertPrivateEnough(joined, mode);
    // The mode listens before anything else: the coordinator may send this round's first mode request
    // (e.g. SecAgg+ setup) as soon as the join is acknowledged, while the model is still being built.
    // One mode session per job for the client's life: it keeps what must survive a reconnect (e.g.
    // which rounds this client already masked an input for).
    this.mode ??= mode.open({
      joined,
      connection: conn,
      identity: this.options.identity,
      threads:
        mode.name === 'he'
          ? (this.options.heThreads ?? defaultHeEncryptionThreads())
          : (this.options.paillierThreads ?? 1),
      warn: (m) => this.emit('warning', m),
      step: (s) => this.emit('modeStep', s),
      stepFailed: (f) => {
        this.emit('warning', `${f.code}: ${f.message}`);
        this.emit('modeStepFailed', f);
      },
    });
    this.openedMode(this.mode);
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

  /** JOB_SPEC_MISMATCH unless the served spec is the one the provider pinned (when it pinned one). */
  private assertAgreedSpec(joined: JoinResult): void {
    const expected = this.options.expectedSpecHash;
    if (expected === undefined) return;
    const served = canonicalSpecHash(joined.spec);
    if (served.toLowerCase() !== expected.toLowerCase()) {
      throw new TributaryError(
        'JOB_SPEC_MISMATCH',
        `Job ${joined.jobId}: the coordinator serves a spec hashing to ${served} (mode "${joined.spec.secureAggregation}"), not the pinned ${expected}; nothing was trained or sent.`,
        { details: { expected, served } },
      );
    }
  }

  /** JOB_SPEC_MISMATCH for a mode that shows the coordinator each update, unless the provider allowed plaintext. */
  private assertPrivateEnough(joined: JoinResult, mode: ClientAggregationMode): void {
    if (!mode.revealsUpdates || this.options.allowPlaintext) return;
    throw new TributaryError(
      'JOB_SPEC_MISMATCH',
      `Job ${joined.jobId}: the coordinator serves mode "${joined.spec.secureAggregation}", which sends each update in the clear; this provider did not allow plaintext (allowPlaintext / --allow-plaintext); nothing was trained or sent.`,
      { details: { mode: joined.spec.secureAggregation } },
    );
  }

  /** Downloads the global model, trains, and returns the update (null when the task was skipped). */
  private async train(task: RoundTask): Promise<TrainedUpdate | null> {
    await this.ready;
    const joined = this.joined;
    const model = this.model;
    if (!joined || !model || task.jobId !== this.options.jobId) return null;
    if (Date.now() > task.deadline) {
      this.emit('warning', `skipped round ${task.round}: its deadline passed before training started`);
      return null;
    }
    const global = await this.downloadModel(task, joined);
    setNamedWeights(model, global);
    const started = Date.now();
    const proximal = task.config.proximalMu > 0 ? global : undefined;
    const result = await trainLocal(model, this.options.dataset, task.config, proximal);
    const trained: NamedTensor[] = getNamedWeights(model).map((t, i) => {
      const g = global[i].data;
      const d = new Float32Array(t.data.length);
      for (let j = 0; j < d.length; j++) d[j] = t.data[j] - g[j];
      return { name: t.name, shape: t.shape, data: d };
    });
    const tensors = this.deltaToSend(global, trained, task);
    this.emit('roundTrained', {
      round: task.round,
      numExamples: result.numExamples,
      loss: result.loss,
      accuracy: result.accuracy,
      trainSeconds: (Date.now() - started) / 1000,
    });
    return {
      task,
      tensors,
      delta: flattenByManifest(tensors, joined.weightManifest),
      numExamples: this.examplesToClaim(result.numExamples, task),
      metrics: { loss: result.loss, accuracy: result.accuracy },
    };
  }

  /**
   * The global model of a task: a signed request (a private job serves it only to its participants),
   * read up to the exact size the job's manifest gives and no further, then hash-checked.
   */
  private async downloadModel(task: RoundTask, joined: JoinResult): Promise<NamedTensor[]> {
    // A connection cut before the response (a keep-alive connection the server closed as it was
    // reused, under load) is retried, and so is a rate-limited request, after the wait the server
    // asks for (providers behind one address share its per-IP limit), both while the round lasts:
    // without the model this client would miss the round.
    const bytes = await withNetworkRetries(
      async () => {
        const response = await this.signedFetch(
          new URL(task.modelPath, this.connection?.currentUrl ?? this.options.url),
        );
        if (response.status === 429) throw rateLimitedError('The model download', response.headers.get('retry-after'));
        if (!response.ok)
          throw new TributaryError('JOB_NO_MODEL', `Model download failed with HTTP ${response.status}.`);
        return readAtMost(response, encodedByteLength(joined.weightManifest));
      },
      {
        until: task.deadline,
        onRetry: (err, attempt) =>
          this.emit(
            'warning',
            `round ${task.round}: model download try ${attempt} failed, retrying: ${describeFailure(err)}`,
          ),
      },
    );
    if (contentHash(bytes) !== task.modelHash) {
      throw new TributaryError('TRANSFER_HASH_MISMATCH', `The downloaded model does not hash to ${task.modelHash}.`);
    }
    return decodeTensors(bytes, { expected: joined.weightManifest });
  }
}
