import { EventEmitter } from 'node:events';
import { updateEncoderFor } from '../shared/aggregation/updateEncoder';
import { contentHash, decodeTensors } from '../shared/codec/modelCodec';
import type { NamedTensor } from '../shared/codec/tensors';
import type { Dataset } from '../shared/data/dataset';
import { TributaryError } from '../shared/errors';
import type { Identity } from '../shared/identity/keyPair';
import { selectBackend, type BackendPreference } from '../shared/ml/backend';
import { buildModel } from '../shared/ml/modelZoo';
import { trainLocal } from '../shared/ml/train';
import { getNamedWeights, setNamedWeights } from '../shared/ml/weights';
import { decodeBinaryJson, encodeBinaryJson } from '../shared/codec/binaryJson';
import { paillierParamsOf, secaggOptionsOf } from '../shared/schemas/jobSpec';
import { ciphertextWidth, ciphertextsToBytes, encryptVector } from '../shared/paillier';
import { PublicKey } from 'paillier-bigint';
import type { JoinResult, PayoutBinding } from '../shared/schemas/messages';
import { quantize, SecAggPlusClient, secaggError, weightUpdate, type SecAggParameters } from '../shared/secagg';
import { CoordinatorConnection, type JobFinished, type RoundTask, type SecAggRequest } from './coordinatorConnection';
import { isJobFinished, joinOrFinish } from './joinJob';
import { assertDatasetFitsInput } from './datasetCheck';
import { plantedDelta, type PlantedBehaviour } from './plantedBehaviour';

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
  /** Worker threads for Paillier encryption (paillier jobs). @default 1 */
  paillierThreads?: number;
  /**
   * Research only (planted federations for contribution scoring): send this misbehaviour's update
   * instead of the trained one (see client/plantedBehaviour.ts). @default undefined (honest)
   */
  plantedBehaviour?: PlantedBehaviour;
  /**
   * The payout address bound to `identity` (client/payoutBinding.ts `createPayoutBinding`), sent at join;
   * jobs with a `chain` config refuse joins without one.
   */
  payout?: PayoutBinding;
}

export interface RoundTrainedEvent {
  round: number;
  numExamples: number;
  loss: number;
  accuracy: number;
  trainSeconds: number;
}

type TfModel = Awaited<ReturnType<typeof buildModel>>;

/** A trained local update kept for SecAgg+ until the collect-masked-vectors stage asks for it. */
interface TrainedUpdate {
  /** The delta flattened in weight-manifest order. */
  delta: Float32Array;
  numExamples: number;
}

/** One SecAgg+ round attempt on this client. */
interface SecAggRound {
  client: SecAggPlusClient;
  /** Requests of one attempt are answered one at a time, in arrival order. */
  queue: Promise<void>;
  params?: SecAggParameters;
}

const attemptKey = (round: number, attempt: number) => `${round}:${attempt}`;

/**
 * A data provider: joins a job, and for each round task downloads the global model (hash-checked),
 * trains on local data, and uploads only the encoded model delta. Reconnects with backoff and rejoins
 * after a coordinator restart. Raw data never leaves this process.
 *
 * With `secureAggregation: "secagg"` the update is never uploaded: training starts at the task and a
 * `SecAggPlusClient` per (round, attempt) answers the coordinator's SecAgg+ stages; at
 * collect-masked-vectors the delta is weighted (`weightUpdate`), quantised and masked, so the
 * coordinator only ever sees masked vectors and learns only their sum. No training metrics are sent.
 *
 * With `secureAggregation: "paillier"` the delta is scaled by ratio = min(n, W)/W, ratio is appended,
 * and the vector is packed and encrypted under the job's public key (`encryptVector`); the
 * ciphertexts go through the ordinary chunked upload with numExamples 1 and no metrics.
 *
 * Events: 'joined' (JoinResult), 'roundTrained' (RoundTrainedEvent), 'warning' (string), 'backend' (name),
 * 'secaggRequest' ({round, attempt, stage}, before the client answers it).
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
  /** Training of each task, by (round, attempt): SecAgg+ awaits it at collect-masked-vectors. */
  private readonly trainings = new Map<string, Promise<TrainedUpdate | null>>();
  private readonly secaggRounds = new Map<string, SecAggRound>();
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
          const trained = this.queue.then(() => this.handleTask(task));
          this.queue = trained.then(
            () => undefined,
            (err) => void this.emit('warning', `round ${task.round} not submitted: ${String(err)}`),
          );
          for (const key of this.trainings.keys())
            if (Number(key.split(':')[0]) < task.round) this.trainings.delete(key);
          for (const key of this.secaggRounds.keys())
            if (Number(key.split(':')[0]) < task.round) this.secaggRounds.delete(key);
          this.trainings.set(attemptKey(task.round, task.attempt), trained);
        });
        conn.on('secaggRequest', (request: SecAggRequest) => this.onSecAggRequest(request));
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
    const outcome = await joinOrFinish(
      conn,
      this.options.jobId,
      () => conn.join(this.options.jobId, this.options.payout),
      () => conn === this.connection,
      (m) => this.emit('warning', m),
    );
    if (outcome === null || isJobFinished(outcome)) return outcome;
    const joined = outcome;
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

  /** Trains on a task; uploads the update in plaintext mode, or returns it for SecAgg+. */
  private async handleTask(task: RoundTask): Promise<TrainedUpdate | null> {
    await this.ready;
    const conn = this.connection;
    const joined = this.joined;
    const model = this.model;
    if (!conn || !joined || !model || task.jobId !== this.options.jobId) return null;
    if (Date.now() > task.deadline) {
      this.emit('warning', `skipped round ${task.round}: its deadline passed before training started`);
      return null;
    }
    const global = await this.downloadModel(task, joined);
    setNamedWeights(model, global);
    const started = Date.now();
    const result = await trainLocal(
      model,
      this.options.dataset,
      task.config,
      task.config.proximalMu > 0 ? global : undefined,
    );
    const local = getNamedWeights(model);
    const trainedDelta: NamedTensor[] = local.map((t, i) => {
      const g = global[i].data;
      const d = new Float32Array(t.data.length);
      for (let j = 0; j < d.length; j++) d[j] = t.data[j] - g[j];
      return { name: t.name, shape: t.shape, data: d };
    });
    const planted = this.options.plantedBehaviour;
    const delta = planted ? plantedDelta(planted, global, trainedDelta, task.config.seed) : trainedDelta;
    const trained: RoundTrainedEvent = {
      round: task.round,
      numExamples: result.numExamples,
      loss: result.loss,
      accuracy: result.accuracy,
      trainSeconds: (Date.now() - started) / 1000,
    };
    if (joined.spec.secureAggregation === 'secagg') {
      this.emit('roundTrained', trained);
      return { delta: flattenInManifestOrder(delta, joined), numExamples: result.numExamples };
    }
    if (joined.spec.secureAggregation === 'paillier') {
      const payload = await this.encryptUpdate(task, joined, flattenInManifestOrder(delta, joined), result.numExamples);
      // numExamples 1 and no metrics: the weight travels encrypted, and metrics would leak per-client information.
      await conn.submitUpdate(task, payload, 1, {});
      this.emit('roundTrained', trained);
      return null;
    }
    const payload = updateEncoderFor(joined.spec.secureAggregation).encode(delta, result.numExamples);
    await conn.submitUpdate(task, payload, result.numExamples, { loss: result.loss, accuracy: result.accuracy });
    this.emit('roundTrained', trained);
    return null;
  }

  /**
   * Paillier: scales the delta by ratio = min(n, W)/W, appends ratio, and encrypts the vector under
   * the job's public key; returns the fixed-width ciphertext bytes.
   */
  private async encryptUpdate(
    task: RoundTask,
    joined: JoinResult,
    delta: Float32Array,
    numExamples: number,
  ): Promise<Uint8Array> {
    const options = joined.spec.paillier;
    if (!options) throw new TributaryError('JOB_SPEC_INVALID', 'The paillier job has no paillier options.');
    const params = paillierParamsOf(joined.spec);
    const publicKey = paillierPublicKey(options.publicKey.n);
    const ratio = Math.min(numExamples, options.maxExampleWeight) / options.maxExampleWeight;
    const vector = new Float32Array(delta.length + 1);
    for (let i = 0; i < delta.length; i++) vector[i] = delta[i] * ratio;
    vector[delta.length] = ratio;
    const encrypted = await encryptVector(publicKey, vector, params, { threads: this.options.paillierThreads ?? 1 });
    if (encrypted.clipped > 0) {
      this.emit(
        'warning',
        `round ${task.round}: ${encrypted.clipped} of ${delta.length} weighted update values were outside ` +
          `[-${options.clipRange}, ${options.clipRange}] and were clipped`,
      );
    }
    return ciphertextsToBytes(encrypted.ciphertexts, ciphertextWidth(publicKey.n));
  }

  private onSecAggRequest(request: SecAggRequest): void {
    if (request.jobId !== this.options.jobId) return;
    this.emit('secaggRequest', { round: request.round, attempt: request.attempt, stage: request.stage });
    const key = attemptKey(request.round, request.attempt);
    let state = this.secaggRounds.get(key);
    if (!state)
      this.secaggRounds.set(key, (state = { client: new SecAggPlusClient(this.clientId), queue: Promise.resolve() }));
    const s = state;
    s.queue = s.queue
      .then(() => this.answerSecAgg(request, s))
      .catch(
        (err) =>
          void this.emit(
            'warning',
            `secure aggregation of round ${request.round} failed at ${request.stage}: ${String(err)}`,
          ),
      );
  }

  /** Answers one SecAgg+ stage; the SecAgg+ client validates the payload (a trust boundary) and the stage order. */
  private async answerSecAgg(request: SecAggRequest, s: SecAggRound): Promise<void> {
    const key = attemptKey(request.round, request.attempt);
    let message: unknown;
    try {
      message = decodeBinaryJson(request.payload);
    } catch {
      throw secaggError('SECAGG_MESSAGE_INVALID', 'SecAgg+ client: the request payload is not valid JSON');
    }
    if ((message as { stage?: unknown } | null)?.stage !== request.stage) {
      throw secaggError(
        'SECAGG_MESSAGE_INVALID',
        `SecAgg+ client: the payload's stage is not the request's ${request.stage}`,
      );
    }
    let input: Uint32Array | undefined;
    if (request.stage === 'collect-masked-vectors') {
      const joined = this.joined;
      const trained = await this.trainings.get(key);
      if (!joined || !trained || !s.params) {
        throw secaggError(
          'SECAGG_MESSAGE_INVALID',
          `SecAgg+ client: no trained update for round ${request.round} attempt ${request.attempt}`,
        );
      }
      const weighted = weightUpdate(trained.delta, trained.numExamples, secaggOptionsOf(joined.spec).maxExampleWeight);
      const q = quantize(weighted, s.params);
      if (q.clipped > 0) {
        this.emit(
          'warning',
          `round ${request.round}: ${q.clipped} of ${weighted.length} weighted update values were outside ` +
            `[-${s.params.clippingRange}, ${s.params.clippingRange}] (largest |x| ${q.maxAbs.toPrecision(3)}) and were clipped`,
        );
      }
      input = q.values;
    }
    const reply = await s.client.handle(message, input);
    if (request.stage === 'setup') s.params = (message as { params: SecAggParameters }).params;
    const conn = this.connection;
    if (!conn) return;
    if (reply.stage === 'collect-masked-vectors') {
      const { maskedVector, ...rest } = reply;
      await conn.sendSecAggReply(request, encodeBinaryJson(rest), maskedVector);
    } else {
      await conn.sendSecAggReply(request, encodeBinaryJson(reply));
    }
    if (reply.stage === 'unmask') {
      this.secaggRounds.delete(key);
      this.trainings.delete(key);
    }
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

const publicKeys = new Map<string, PublicKey>();
/** One PublicKey object per modulus, so the encryptor cached for it (encryptorFor) is reused across rounds. */
function paillierPublicKey(nHex: string): PublicKey {
  let key = publicKeys.get(nHex);
  if (!key) {
    const n = BigInt(`0x${nHex}`);
    key = new PublicKey(n, n + 1n);
    publicKeys.set(nHex, key);
  }
  return key;
}

/** The delta as one vector, tensors in the job's weight-manifest order (the order the coordinator splits the sum in). */
function flattenInManifestOrder(delta: readonly NamedTensor[], joined: JoinResult): Float32Array {
  const byName = new Map(delta.map((t) => [t.name, t]));
  const total = joined.weightManifest.reduce((n, e) => n + e.shape.reduce((a, b) => a * b, 1), 0);
  const out = new Float32Array(total);
  let offset = 0;
  for (const entry of joined.weightManifest) {
    const t = byName.get(entry.name);
    const size = entry.shape.reduce((a, b) => a * b, 1);
    if (!t || t.data.length !== size) {
      throw new TributaryError(
        'MODEL_SHAPE_MISMATCH',
        `The local model has no weight ${entry.name} of ${size} values.`,
      );
    }
    out.set(t.data, offset);
    offset += size;
  }
  return out;
}
