import { decodeBinaryJson, encodeBinaryJson } from '../../shared/codec/binaryJson';
import { clipAndWeightUpdate } from '../../shared/aggregation/weighting';
import { TributaryError } from '../../shared/errors';
import type { JobSpec, SecAggOptions } from '../../shared/schemas/jobSpec';
import type { RoundTask, SecAggRequest } from '../../shared/schemas/messages';
import { totalParameters } from '../../shared/codec/tensors';
import {
  quantizeWeightedUpdate,
  type SecAggParameters,
  type SecAggPolicy,
  SecAggPlusClient,
  secaggError,
  secaggPolicyFor,
  UnmaskedRounds,
  bytesToVector,
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

/**
 * Mode `secagg` (client half): the update is never uploaded. Training starts at the task and a
 * `SecAggPlusClient` per (round, attempt) answers the coordinator's SecAgg+ stages; at
 * collect-masked-vectors the trained delta is clipped to the clipping range, weighted (shared
 * weighting) and quantised, the weight ratio on its own [0, 1] range (quantizeWeightedUpdate), then
 * masked, so the coordinator only ever sees masked vectors and learns only their sum, which it can
 * check against what honest clients produce. No training metrics are sent.
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

  constructor(
    private readonly context: ClientModeContext,
    private readonly hooks: SecAggClientHooks = {},
  ) {
    const { joined } = context;
    this.unmasked = new UnmaskedRounds(joined.jobId);
    const vectorLength = totalParameters(joined.weightManifest) + 1;
    this.policy = secaggPolicyFor(secaggOptions(joined.spec), joined.spec.minClients, vectorLength);
    context.connection.on('secaggRequest', this.onRequest);
  }

  async onTask(task: RoundTask, training: Promise<TrainedUpdate | null>): Promise<void> {
    for (const key of this.trainings.keys()) if (Number(key.split(':')[0]) < task.round) this.trainings.delete(key);
    for (const key of this.attempts.keys()) if (Number(key.split(':')[0]) < task.round) this.attempts.delete(key);
    this.trainings.set(attemptKey(task.round, task.attempt), training);
    await training;
  }

  close(): void {
    this.context.connection.off('secaggRequest', this.onRequest);
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
      state = { client: new SecAggPlusClient(identity, this.policy, session), queue: Promise.resolve() };
      this.attempts.set(key, state);
    }
    const s = state;
    s.queue = s.queue
      .then(() => this.answer(request, s))
      .catch((err) =>
        this.context.warn(`secure aggregation of round ${request.round} failed at ${request.stage}: ${String(err)}`),
      );
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
    if (request.stage === 'setup') {
      const setup = message as { params: SecAggParameters; clientIds: string[] };
      s.params = setup.params;
      s.clientIds = setup.clientIds;
    }
    const conn = this.context.connection;
    if (reply.stage === 'collect-masked-vectors') {
      const { maskedVector, ...rest } = reply;
      await conn.sendSecAggReply(
        request,
        encodeBinaryJson(rest),
        await this.maskedVectorToSend(request, s, maskedVector),
      );
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

  /** The trained delta, clipped, weighted and quantised with the session's parameters. */
  private async maskedInput(request: SecAggRequest, s: SecAggAttempt): Promise<Uint32Array> {
    const trained = await this.trainings.get(attemptKey(request.round, request.attempt));
    if (!trained || !s.params) {
      throw secaggError(
        'SECAGG_MESSAGE_INVALID',
        `SecAgg+ client: no trained update for round ${request.round} attempt ${request.attempt}`,
      );
    }
    const { maxExampleWeight } = secaggOptions(this.context.joined.spec);
    const range = s.params.clippingRange;
    const weighted = clipAndWeightUpdate(trained.delta, trained.numExamples, maxExampleWeight, range);
    if (weighted.clipped > 0) {
      this.context.warn(
        `round ${request.round}: ${weighted.clipped} of ${trained.delta.length} update values were outside ` +
          `[-${range}, ${range}] (largest |x| ${weighted.maxAbs.toPrecision(3)}) and were clipped`,
      );
    }
    return quantizeWeightedUpdate(weighted.values, s.params).values;
  }
}

/** The secagg client half with research hooks (client/plantedModes.ts); production uses `secaggClientMode`. */
export function createSecAggClientMode(hooks: SecAggClientHooks = {}): ClientAggregationMode {
  return { name: 'secagg', open: (context) => new SecAggClientSession(context, hooks) };
}

export const secaggClientMode: ClientAggregationMode = createSecAggClientMode();
