import { decodeBinaryJson, encodeBinaryJson } from '../../../shared/codec/binaryJson';
import { ChunkAssembler } from '../../../shared/codec/chunks';
import type { TensorManifestEntry } from '../../../shared/codec/tensors';
import { TributaryError, toTributaryError } from '../../../shared/errors';
import type { SecAggOptions } from '../../../shared/schemas/jobSpec';
import { MAX_CHUNK_BYTES, type SecAggReplyBody, type SecAggRequest } from '../../../shared/schemas/messages';
import {
  type SecAggDropout,
  SecAggPlusServer,
  type SecAggStage,
  type SecAggStep,
  secaggError,
  secaggRoundId,
  sharedSecAggWorkers,
} from '../../../shared/secagg';
import { WakeableWait } from '../../../shared/wakeableWait';
import type { RoundFailure } from '../../store/store';
import type { AggregatedUpdates } from '../../strategy/strategy';
import type { ClientDirectory } from '../../transport/clientDirectory';
import type { RevealedPrivacy } from '../aggregationMode';
import { type SecAggEncoding, secaggEncodingOf, sessionQuantization } from './secaggEncoding';

export interface SecAggSessionOptions {
  jobId: string;
  round: number;
  attempt: number;
  /** The cohort index when the round is split into cohorts (suffixes the SecAgg+ round id with `:c<index>`). */
  cohort?: number;
  /** The clients selected for this attempt (they already have their round:task). */
  selected: readonly string[];
  manifest: readonly TensorManifestEntry[];
  options: SecAggOptions;
  /** How vectors encode updates and the sum decodes. @default ratio-weighted deltas (no DP) */
  encoding?: SecAggEncoding;
  /** Fewest contributors to the sum; fewer survivors abort the session with ROUND_QUORUM_NOT_MET. */
  minClients: number;
  /** Milliseconds since the epoch when training must be done; collect-masked-vectors waits at least until then. */
  trainingDeadline: number;
  directory: ClientDirectory;
  now?: () => number;
}

export interface SecAggSessionResult {
  /** Σ w_i·Δ_i per tensor and Σ w_i in examples (the clients send ratio_i = w_i / maxExampleWeight). */
  updates: AggregatedUpdates;
  /** DP rounds: the count of unclipped updates in the sum (see SecAggEncoding). */
  privacy?: RevealedPrivacy;
  participants: string[];
  failures: RoundFailure[];
}

/**
 * collect() stops before this stage: after it clients sign the survivor set and then reveal the shares
 * that remove masks, so a session cancelled here has revealed nothing (the round's quorum is checked
 * across all cohorts first, and a retry is still allowed by the clients' UnmaskedRounds guard).
 */
const REVEAL_STAGE: SecAggStage = 'consistency-check';

/**
 * The coordinator's transport for one SecAgg+ round attempt (aggregation mode `secagg`): drives
 * `SecAggPlusServer` stage by stage over the client directory. Each stage sends every request to its
 * client as `secagg:request` and collects `secagg:reply` messages until every asked client answered,
 * left, or the stage timed out (collect-masked-vectors also waits for local training, until the
 * task's deadline); then `advance()` turns the silent ones into dropouts. The session only routes
 * sealed share bundles and sees masked vectors and their sum, never one client's update.
 *
 * Two phases, so a round reveals nothing unless it will count: `collect()` runs every stage before
 * unmask and resolves with the clients whose masked vectors arrived; `unmask()` (called only once the
 * round's quorum is known to hold) runs the unmask stage and resolves with the dequantised sum, or
 * rejects with ROUND_QUORUM_NOT_MET / SECAGG_* when the protocol aborts.
 */
export class SecAggSession {
  readonly vectorLength: number;
  private readonly encoding: SecAggEncoding;
  private readonly roundId: string;
  private readonly server: SecAggPlusServer;
  private readonly selected: ReadonlySet<string>;
  private readonly dropped = new Map<string, string>();
  private waiting = new Set<string>();
  private stage: SecAggStage | null = null;
  private readonly replies = new WakeableWait();
  private stopped = false;
  /** Masked vectors arriving in parts (SecAggReplyBody.part), by client: dropped when the stage ends. */
  private readonly partial = new Map<string, { reply: string; chunks: ChunkAssembler }>();
  /** The step waiting to be sent once collect() has ended. */
  private pending: SecAggStep | null = null;

  constructor(private readonly opts: SecAggSessionOptions) {
    this.encoding = opts.encoding ?? secaggEncodingOf(opts.manifest, opts.options);
    this.vectorLength = this.encoding.vectorLength;
    this.selected = new Set(opts.selected);
    this.roundId = secaggRoundId({ jobId: opts.jobId, round: opts.round, attempt: opts.attempt, cohort: opts.cohort });
    this.server = new SecAggPlusServer({
      roundId: this.roundId,
      clientIds: opts.selected,
      vectorLength: this.vectorLength,
      neighbourCount: opts.options.neighbourCount,
      threshold: opts.options.threshold,
      quantization: sessionQuantization(opts.options),
      minClients: opts.minClients,
      // The survivors' self masks are expanded off the event loop at unmask (the process-wide pool).
      maskSums: sharedSecAggWorkers(),
    });
  }

  /** The quantisation the clients use (sent to them in the setup stage). */
  get quantization(): { clippingRange: number; quantizationRange: number } {
    return { clippingRange: this.server.params.clippingRange, quantizationRange: this.server.params.quantizationRange };
  }

  /**
   * Phase 1: every stage before unmask. Resolves with the clients whose masked vectors the server
   * holds (the contributors, if unmask succeeds); rejects when the protocol aborts.
   */
  async collect(): Promise<string[]> {
    let step = this.server.start();
    while (!step.done && step.stage !== REVEAL_STAGE) step = await this.runStage(step);
    this.pending = step;
    this.stage = null;
    // The clients whose masked vectors the server holds: the contributors if unmask succeeds.
    return step.done ? step.result.contributors : [...this.server.survivors];
  }

  /**
   * Between the phases: survivors that left while the round waited (other cohorts still collecting)
   * are withdrawn from the survivor set, since a self mask comes off only with its owner's signature
   * at the consistency check; they count as dropouts and their inputs stay masked. Returns the
   * clients the sum will cover; throws ROUND_QUORUM_NOT_MET (nothing revealed) when too few remain.
   */
  prepareReveal(): string[] {
    const step = this.pending;
    if (!step) throw new TributaryError('INTERNAL', 'SecAgg+ session: unmasking before collect() finished.');
    if (step.done) return step.result.contributors;
    const gone = [...step.requests.keys()].filter((id) => this.dropped.has(id));
    if (gone.length > 0) this.pending = this.server.withdraw(gone);
    return [...this.server.survivors];
  }

  /**
   * Phase 2: unmask (after withdrawing the survivors that left, as prepareReveal) and dequantise.
   * Call only after collect() resolved and the round's quorum held.
   */
  async unmask(): Promise<SecAggSessionResult> {
    this.prepareReveal();
    let step = this.pending!;
    this.pending = null;
    while (!step.done) step = await this.runStage(step);
    this.stage = null;
    const { sum, contributors, dropouts } = step.result;
    const cohort = this.opts.cohort;
    // A cohort's sum is attributed to its members; one whole-round sum names no one (it would exclude everyone).
    const owner =
      cohort === undefined
        ? { label: 'the SecAgg+ sum' }
        : { label: `SecAgg+ cohort ${cohort}'s sum`, members: contributors };
    const { updates, privacy } = this.encoding.decode(sum, contributors.length, this.roundId, owner);
    return {
      updates,
      ...(privacy ? { privacy } : {}),
      participants: contributors,
      // A client that dropped at unmask still contributed its masked vector: it is a participant.
      failures: this.failuresOf(dropouts.filter((d) => !contributors.includes(d.clientId))),
    };
  }

  /** Sends one stage's requests, waits for the replies (or the timeout), and advances the server. */
  private async runStage(step: Extract<SecAggStep, { done: false }>): Promise<SecAggStep> {
    if (this.stopped) throw new TributaryError('ROUND_QUORUM_NOT_MET', 'SecAgg+ session stopped');
    this.stage = step.stage;
    this.waiting = new Set();
    for (const [clientId, message] of step.requests) {
      const link = this.dropped.has(clientId) ? undefined : this.opts.directory.link(clientId);
      if (!link) continue; // never answers: advance() records it as a dropout
      const request: SecAggRequest = {
        jobId: this.opts.jobId,
        round: this.opts.round,
        attempt: this.opts.attempt,
        stage: step.stage,
        payload: encodeBinaryJson(message),
      };
      this.waiting.add(clientId);
      link.send('secagg:request', request);
    }
    const timeout =
      step.stage === 'collect-masked-vectors'
        ? Math.max(this.opts.options.stageTimeoutMs, this.opts.trainingDeadline - this.now())
        : this.opts.options.stageTimeoutMs;
    await this.replies.until(() => this.waiting.size === 0 || this.stopped, timeout);
    this.waiting = new Set();
    // An incomplete multi-part masked vector is no reply: its sender is a dropout.
    this.partial.clear();
    return this.server.advance();
  }

  /**
   * One client's reply, already authenticated as `clientId` by the socket layer. Throws a coded error
   * and changes nothing for a reply of another attempt or stage, from a client that was not asked,
   * one whose clientId is not the connection's, or one the SecAgg+ schemas reject.
   */
  receive(clientId: string, body: SecAggReplyBody, data: Uint8Array | undefined): void {
    if (body.attempt !== this.opts.attempt) {
      throw new TributaryError(
        'ROUND_WRONG',
        `Expected attempt ${this.opts.attempt} of round ${this.opts.round}, got ${body.attempt}.`,
      );
    }
    if (!this.selected.has(clientId) || this.dropped.has(clientId)) {
      throw new TributaryError(
        'ROUND_NOT_SELECTED',
        `The client is not (or no longer) in round ${this.opts.round}'s secure aggregation.`,
      );
    }
    if (this.stage === null || body.stage !== this.stage) {
      throw secaggError(
        'SECAGG_STAGE_OUT_OF_ORDER',
        `SecAgg+ session: expected ${this.stage ?? '(none)'} stage, got ${body.stage} stage`,
        { expected: this.stage, got: body.stage },
      );
    }
    let reply: unknown;
    try {
      reply = decodeBinaryJson(body.reply);
    } catch {
      throw secaggError('SECAGG_MESSAGE_INVALID', 'SecAgg+ session: the reply is not valid JSON');
    }
    if (!reply || typeof reply !== 'object' || Array.isArray(reply)) {
      throw secaggError('SECAGG_MESSAGE_INVALID', 'SecAgg+ session: the reply is not an object');
    }
    const r = reply as Record<string, unknown>;
    if (r.clientId !== clientId) {
      throw secaggError(
        'SECAGG_MESSAGE_INVALID',
        'SecAgg+ session: the reply names another client than the connection',
      );
    }
    let assembled: ChunkAssembler | undefined;
    if (body.stage === 'collect-masked-vectors') {
      if (!data)
        throw secaggError('SECAGG_MESSAGE_INVALID', 'SecAgg+ session: the masked vector must be the message data');
      if ('maskedVector' in r) {
        throw secaggError(
          'SECAGG_MESSAGE_INVALID',
          'SecAgg+ session: the masked vector belongs in the message data, not the body',
        );
      }
      let vector: Uint8Array | null;
      if (body.part) {
        assembled = this.partsOf(clientId, body);
        vector = this.addPart(assembled, body, data);
      } else {
        vector = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
      }
      if (!vector) return; // more parts to come
      r.maskedVector = vector;
    } else if (data || body.part) {
      throw secaggError(
        'SECAGG_MESSAGE_INVALID',
        `SecAgg+ session: a ${body.stage} reply carries no binary data and has no parts`,
      );
    }
    try {
      this.server.receive(r); // validates with the SecAgg+ schemas; keeps nothing on error
    } catch (err) {
      // Kept until the SecAgg+ server accepts the whole vector, so a refused last part can be resent.
      assembled?.undoLast();
      throw err;
    }
    this.partial.delete(clientId);
    this.waiting.delete(clientId);
    this.replies.wake();
  }

  /** The parts received so far of a client's multi-part masked vector (created at part 0). */
  private partsOf(clientId: string, body: SecAggReplyBody): ChunkAssembler {
    const part = body.part!;
    const expectedBytes = 4 * this.vectorLength;
    const current = this.partial.get(clientId);
    if (current) {
      if (part.count !== current.chunks.count || body.reply !== current.reply) {
        throw secaggError(
          'SECAGG_MESSAGE_INVALID',
          `SecAgg+ session: part ${part.index} disagrees with part 0 on the part count or the reply`,
        );
      }
      return current.chunks;
    }
    if (part.index !== 0) {
      throw secaggError(
        'SECAGG_MESSAGE_INVALID',
        `SecAgg+ session: expected masked-vector part 0, got part ${part.index}`,
      );
    }
    const chunks = new ChunkAssembler(expectedBytes, { count: part.count, maxChunkBytes: MAX_CHUNK_BYTES });
    this.partial.set(clientId, { reply: body.reply, chunks });
    return chunks;
  }

  /** Adds one part; the whole vector with the last part, else null. A refused part changes nothing. */
  private addPart(chunks: ChunkAssembler, body: SecAggReplyBody, data: Uint8Array): Uint8Array | null {
    try {
      return chunks.add(body.part!.index, data);
    } catch (err) {
      const e = toTributaryError(err);
      throw secaggError('SECAGG_MESSAGE_INVALID', `SecAgg+ session: masked-vector part refused: ${e.message}`);
    }
  }

  /** The dropouts so far, as round failures (for an attempt that aborts). */
  get failures(): RoundFailure[] {
    return this.failuresOf(this.server.dropouts);
  }

  /** A selected client disconnected: it is a dropout from now on. */
  markDropped(clientId: string, reason: string): void {
    if (!this.selected.has(clientId) || this.dropped.has(clientId)) return;
    this.dropped.set(clientId, reason);
    this.partial.delete(clientId);
    if (this.waiting.delete(clientId)) this.replies.wake();
  }

  /** Stops waiting (shutdown, or the round will not reveal): the running phase rejects; nothing is unmasked. */
  stop(): void {
    this.stopped = true;
    this.server.cancel();
    this.replies.wake();
  }

  private failuresOf(dropouts: readonly SecAggDropout[]): RoundFailure[] {
    const seen = new Set<string>();
    const out: RoundFailure[] = [];
    for (const d of dropouts) {
      if (seen.has(d.clientId)) continue;
      seen.add(d.clientId);
      const left = this.dropped.get(d.clientId);
      out.push({
        clientId: d.clientId,
        reason:
          left !== undefined ? `DISCONNECTED at ${d.stage}: ${left}` : `SECAGG_DROPOUT at ${d.stage} (${d.reason})`,
      });
    }
    return out;
  }

  private now(): number {
    return this.opts.now ? this.opts.now() : Date.now();
  }
}
