import { decodeBinaryJson, encodeBinaryJson } from '../../shared/codec/binaryJson';
import {
  clippedWithBit,
  distributedNoisePlanOf,
  distributedVectorLength,
  privacyPlanOf,
  roundClippingNorm,
} from '../../shared/aggregation/privateUpdate';
import { TributaryError, toTributaryError } from '../../shared/errors';
import { encodeDistributedUpdate } from '../../shared/privacy/distributedNoise';
import { cryptoRandom } from '../../shared/privacy/randomSource';
import type { PrivacyPlan } from '../../shared/schemas/privacySpec';
import type { JobSpec, SecAggOptions } from '../../shared/schemas/jobSpec';
import type { RoundTask, SecAggRequest } from '../../shared/schemas/messages';
import { totalParameters } from '../../shared/codec/tensors';
import {
  quantizeWeightedUpdate,
  type QuantizeResult,
  type SecAggParameters,
  type SecAggPolicy,
  type SecAggClientOptions,
  SecAggPlusClient,
  secaggError,
  secaggPolicyFor,
  UnmaskedRounds,
  bytesToVector,
  type MaskSumSource,
  type SignatureBatchVerifier,
  sharedSecAggWorkers,
  quantizeClippedWeightedWith,
  type UpdateQuantizer,
  vectorToBytes,
} from '../../shared/secagg';
import type { ClientAggregationMode, ClientModeContext, TrainedUpdate } from './clientAggregationMode';

function secaggOptions(spec: JobSpec): SecAggOptions {
  if (spec.secureAggregation !== 'secagg') throw new TributaryError('JOB_SPEC_INVALID', 'The job is not a secagg job.');
  return spec.secagg;
}

/** One SecAgg+ round attempt on this client. */
interface SecAggAttempt {
  client: SecAggPlusClient;
  /** Requests of one attempt are answered one at a time, in arrival order. */
  queue: Promise<void>;
  params?: SecAggParameters;
  /** The session's round id, once setup was accepted: the public rotation seed of distributed DP noise. */
  roundId?: string;
  clientIds?: readonly string[];
}

const attemptKey = (round: number, attempt: number) => `${round}:${attempt}`;

/** What a research hook sees of the masked input it may change. */
export interface MaskedVectorContext {
  request: SecAggRequest;
  params: SecAggParameters;
  /** The attempt's (cohort's) clients, from the setup request. */
  clientIds: readonly string[];
  trained: TrainedUpdate;
  context: ClientModeContext;
}

/**
 * Research hooks of the secagg client half (planted attackers and tests; the production client
 * never sets one: `secaggClientMode` has none).
 */
export interface SecAggClientHooks {
  /**
   * The masked vector this client sends, given the one its SecAgg+ client produced (values mod 2^32).
   * A client running modified code can add anything here; the coordinator sees only the revealed sum.
   */
  maskedVectorToSend?(masked: Uint32Array, info: MaskedVectorContext): Uint32Array;
}

/** How the secagg client half computes masks. */
export interface SecAggClientModeOptions {
  /**
   * Where each session's mask sum is computed while the model trains (after share-keys): the
   * process-wide SecAggWorkerPool unless given (looked up per session: a failed pool is replaced, and
   * setSecAggWorkerThreads(0) turns it off); `null` masks in the event loop at masked input instead.
   */
  maskSums?: MaskSumSource | null;
  /** Where neighbours' signatures are checked (share-keys, unmask): the process-wide pool unless given; `null`: the event loop. */
  signatures?: SignatureBatchVerifier | null;
  /**
   * Where the trained delta is clipped, weighted and quantised at masked input (jobs without DP): the
   * process-wide pool unless given; `null`, or if it fails (SECAGG_MASK_WORKER_FAILED): the event loop.
   */
  quantizer?: UpdateQuantizer | null;
}

/**
 * Mode `secagg` (client half): the update is never uploaded. Training starts at the task and a
 * `SecAggPlusClient` per (round, attempt) answers the coordinator's SecAgg+ stages; at
 * collect-masked-vectors the trained delta is clipped to the clipping range, weighted (shared
 * weighting) and quantised, the weight ratio on its own [0, 1] range (quantizeWeightedUpdate), then
 * masked, so the coordinator only ever sees masked vectors and learns only their sum, which it can
 * check against what honest clients produce. No training metrics are sent.
 *
 * Under DP (a `privacy` block, shared/aggregation/privateUpdate.ts) the delta is clipped to the
 * round's C instead of weighted: with central noise the vector is the clipped delta and the unclipped
 * bit, quantised as usual; with distributed noise it is the client's own noised integer encoding
 * (encodeDistributedUpdate: rotated with the session's round id, scaled, rounded, its share of the
 * discrete Gaussian added), so the sum SecAgg+ reveals is already noised. The policy then requires
 * that encoding's length, and the plan is derived here from the joined spec, never taken from the coordinator.
 *
 * Masks: each session's mask sum is computed in a worker thread (SecAggWorkerPool) as soon as share-keys is
 * answered, i.e. while the model trains, so masked input is one vector add (SecAggPlusClient). The
 * neighbours' signatures (share-keys, unmask) are checked there one batch per stage, and the delta is
 * quantised there at masked input (jobs without DP); each falls back to the event loop, with the same
 * result, if the pool failed (SECAGG_MASK_WORKER_FAILED).
 * Sessions of older rounds, and every session at close, are disposed (their secrets wiped).
 */
class SecAggClientSession {
  /** Training of each task, by (round, attempt): collect-masked-vectors awaits it. */
  private readonly trainings = new Map<string, Promise<TrainedUpdate | null>>();
  private readonly attempts = new Map<string, SecAggAttempt>();
  private readonly onRequest = (request: SecAggRequest) => this.handle(request);
  /** One masked input per (job, round), across every session of this job (kept for the client's life). */
  private readonly unmasked: UnmaskedRounds;
  /** The weakest session this client accepts, from the spec it joined (the coordinator cannot lower it). */
  private readonly policy: SecAggPolicy;
  /** The job's privacy plan (from the joined spec), if it has a privacy block. */
  private readonly privacy: PrivacyPlan | undefined;

  constructor(
    private readonly context: ClientModeContext,
    private readonly hooks: SecAggClientHooks = {},
    /** Where each new session's mask sum is computed and signatures checked (undefined: in the event loop). */
    private readonly workers: () => SecAggClientOptions,
    /** Where the trained delta is quantised (undefined: in the event loop). */
    private readonly quantizer: () => UpdateQuantizer | undefined = () => undefined,
  ) {
    const { joined } = context;
    this.unmasked = new UnmaskedRounds(joined.jobId);
    const parameters = totalParameters(joined.weightManifest);
    this.privacy = privacyPlanOf(joined.spec, parameters);
    const distributed = this.privacy?.noise === 'distributed';
    const vectorLength = distributed ? distributedVectorLength(parameters) : parameters + 1;
    this.policy = secaggPolicyFor(secaggOptions(joined.spec), joined.spec.minClients, vectorLength, {
      modularInput: distributed,
    });
    context.connection.on('secaggRequest', this.onRequest);
  }

  async onTask(task: RoundTask, training: Promise<TrainedUpdate | null>): Promise<void> {
    for (const key of this.trainings.keys()) if (Number(key.split(':')[0]) < task.round) this.trainings.delete(key);
    for (const [key, attempt] of this.attempts) {
      if (Number(key.split(':')[0]) < task.round) {
        attempt.client.dispose();
        this.attempts.delete(key);
      }
    }
    this.trainings.set(attemptKey(task.round, task.attempt), training);
    await training;
  }

  close(): void {
    this.context.connection.off('secaggRequest', this.onRequest);
    for (const attempt of this.attempts.values()) attempt.client.dispose();
    this.attempts.clear();
  }

  private handle(request: SecAggRequest): void {
    const { joined, identity } = this.context;
    if (request.jobId !== joined.jobId) return;
    this.context.step({ round: request.round, attempt: request.attempt, stage: request.stage });
    const key = attemptKey(request.round, request.attempt);
    let state = this.attempts.get(key);
    if (!state) {
      const session = {
        jobId: joined.jobId,
        round: request.round,
        attempt: request.attempt,
        unmaskedRounds: this.unmasked,
      };
      const client = new SecAggPlusClient(identity, this.policy, session, this.workers());
      state = { client, queue: Promise.resolve() };
      this.attempts.set(key, state);
    }
    const s = state;
    const { round, attempt, stage } = request;
    s.queue = s.queue
      .then(() => this.answer(request, s))
      .catch((err: unknown) => {
        // A refusal is silence to the coordinator; locally it is a coded failure (event modeStepFailed).
        const e = toTributaryError(err);
        const why = err instanceof TributaryError ? e.message : String(err);
        const message = `secure aggregation of round ${round} attempt ${attempt} failed at ${stage}: ${why}`;
        this.context.stepFailed({ round, attempt, stage, code: e.code, message });
      });
  }

  /** Answers one SecAgg+ stage; the SecAgg+ client validates the payload (a trust boundary) and the stage order. */
  private async answer(request: SecAggRequest, s: SecAggAttempt): Promise<void> {
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
    const input = request.stage === 'collect-masked-vectors' ? await this.maskedInput(request, s) : undefined;
    const reply = await s.client.handle(message, input);
    if (reply.stage === 'collect-masked-vectors' && s.client.precomputeFailure !== undefined) {
      const why = toTributaryError(s.client.precomputeFailure).message;
      this.context.warn(`round ${request.round}: masks computed in the event loop (${why})`);
    }
    if (request.stage === 'setup') {
      // Accepted by the SecAgg+ client: the round id names this job's round attempt (and cohort).
      const setup = message as { params: SecAggParameters; roundId: string; clientIds: string[] };
      s.params = setup.params;
      s.roundId = setup.roundId;
      s.clientIds = setup.clientIds;
    }
    const conn = this.context.connection;
    if (reply.stage === 'collect-masked-vectors') {
      const { maskedVector, ...rest } = reply;
      // Parts of the round's chunk size (the task says it), like uploads.
      const task = (await this.trainings.get(key))?.task;
      const masked = await this.maskedVectorToSend(request, s, maskedVector);
      await conn.sendSecAggReply(request, encodeBinaryJson(rest), masked, task?.chunkBytes);
    } else {
      await conn.sendSecAggReply(request, encodeBinaryJson(reply));
    }
    if (reply.stage === 'unmask') {
      this.attempts.delete(key);
      this.trainings.delete(key);
    }
  }

  /** The masked vector as the SecAgg+ client produced it, unless a research hook changes it. */
  private async maskedVectorToSend(request: SecAggRequest, s: SecAggAttempt, masked: Uint8Array): Promise<Uint8Array> {
    const hook = this.hooks.maskedVectorToSend;
    if (!hook) return masked;
    const trained = await this.trainings.get(attemptKey(request.round, request.attempt));
    if (!trained || !s.params) return masked;
    const info = { request, params: s.params, clientIds: s.clientIds ?? [], trained, context: this.context };
    return vectorToBytes(hook(bytesToVector(masked), info));
  }

  /**
   * The trained delta, clipped, weighted and quantised with the session's parameters (under DP:
   * clipped to the round's C with the unclipped bit); or its distributed-noise encoding.
   */
  private async maskedInput(request: SecAggRequest, s: SecAggAttempt): Promise<Uint32Array> {
    const trained = await this.trainings.get(attemptKey(request.round, request.attempt));
    if (!trained || !s.params) {
      throw secaggError(
        'SECAGG_MESSAGE_INVALID',
        `SecAgg+ client: no trained update for round ${request.round} attempt ${request.attempt}`,
      );
    }
    const plan = this.privacy;
    const clippingNorm = plan ? roundClippingNorm(plan, trained.task.config) : 0;
    if (plan?.noise === 'distributed') {
      if (!s.roundId) throw secaggError('SECAGG_MESSAGE_INVALID', 'SecAgg+ client: no round id from setup');
      const noise = distributedNoisePlanOf(plan, trained.delta.length, clippingNorm);
      return encodeDistributedUpdate(trained.delta, noise, s.roundId, cryptoRandom()).values;
    }
    const range = s.params.clippingRange;
    if (plan) {
      // Central DP: the weight slot carries the unclipped bit (0 or 1), which the [0, 1] weight range holds.
      const q = quantizeWeightedUpdate(clippedWithBit(trained.delta, clippingNorm).vector, s.params);
      this.warnClipped(request.round, q.clipped, q.maxAbs, trained.delta.length, range);
      return q.values;
    }
    const { maxExampleWeight } = secaggOptions(this.context.joined.spec);
    // clipAndWeightUpdate then quantizeWeightedUpdate, fused into one pass (the clipping range is the session's).
    const q = await this.quantizeClippedWeighted(trained, maxExampleWeight, s.params);
    this.warnClipped(request.round, q.clipped, q.maxAbs, trained.delta.length, range);
    return q.values;
  }

  /** quantizeClippedWeightedUpdate, in the worker pool when there is one (the same result), else or if it failed here. */
  private quantizeClippedWeighted(
    trained: TrainedUpdate,
    maxExampleWeight: number,
    params: SecAggParameters,
  ): Promise<QuantizeResult> {
    return quantizeClippedWeightedWith(
      this.quantizer(),
      trained.delta,
      trained.numExamples,
      maxExampleWeight,
      params,
      (err) => this.context.warn(`round ${trained.task.round}: update quantised in the event loop (${err.message})`),
    );
  }

  private warnClipped(round: number, clipped: number, maxAbs: number, length: number, range: number): void {
    if (clipped === 0) return;
    this.context.warn(
      `round ${round}: ${clipped} of ${length} update values were outside [-${range}, ${range}] ` +
        `(largest |x| ${maxAbs.toPrecision(3)}) and were clipped`,
    );
  }
}

/** The secagg client half with research hooks (client/plantedModes.ts); production uses `secaggClientMode`. */
export function createSecAggClientMode(
  hooks: SecAggClientHooks = {},
  options: SecAggClientModeOptions = {},
): ClientAggregationMode {
  return {
    name: 'secagg',
    open: (context) =>
      new SecAggClientSession(
        context,
        hooks,
        () => ({
          maskSums: options.maskSums === null ? undefined : (options.maskSums ?? sharedSecAggWorkers()),
          signatures: options.signatures === null ? undefined : (options.signatures ?? sharedSecAggWorkers()),
        }),
        () => (options.quantizer === null ? undefined : (options.quantizer ?? sharedSecAggWorkers())),
      ),
  };
}

export const secaggClientMode: ClientAggregationMode = createSecAggClientMode();
