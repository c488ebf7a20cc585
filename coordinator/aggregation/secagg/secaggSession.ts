import { decodeBinaryJson, encodeBinaryJson } from '../../shared/codec/binaryJson';
import { sizeOfShape, type TensorManifestEntry } from '../../shared/codec/tensors';
import { TributaryError } from '../../shared/errors';
import type { SecAggOptions } from '../../shared/schemas/jobSpec';
import { EVENTS, type SecAggReplyBody, type SecAggRequest } from '../../shared/schemas/messages';
import {
  dequantizeSum,
  SecAggPlusServer,
  secaggError,
  type SecAggDropout,
  type SecAggStage,
} from '../../shared/secagg';
import type { RoundFailure } from '../store/store';
import type { AggregatedUpdates } from '../strategy/strategy';
import type { ClientDirectory } from '../transport/clientDirectory';

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
  /** Fewest contributors to the sum; fewer survivors abort the session with ROUND_QUORUM_NOT_MET. */
  minClients: number;
  /** Milliseconds since the epoch when training must be done; collect-masked-vectors waits at least until then. */
  trainingDeadline: number;
  directory: ClientDirectory;
  now?: () => number;
}

export interface SecAggSessionResult {
  /** Σ ratio_i·Δ_i per tensor and Σ ratio_i (ratio_i = min(n_i, maxExampleWeight) / maxExampleWeight). */
  updates: AggregatedUpdates;
  participants: string[];
  failures: RoundFailure[];
}

/**
 * The coordinator's transport for one SecAgg+ round attempt (aggregation mode `secagg`): drives
 * `SecAggPlusServer` stage by stage over the client directory. Each stage sends every request to its
 * client as `secagg:request` and collects `secagg:reply` messages until every asked client answered,
 * left, or the stage timed out (collect-masked-vectors also waits for local training, until the
 * task's deadline); then `advance()` turns the silent ones into dropouts. The session only routes
 * sealed share bundles and sees masked vectors and their sum, never one client's update.
 *
 * `run()` resolves with the dequantised sum as AggregatedUpdates (the appended weight element gives
 * Σ ratio_i, used as totalWeight), or rejects with ROUND_QUORUM_NOT_MET / SECAGG_* when the
 * protocol aborts.
 */
/** The parts of one client's masked vector received so far. */
interface PartialVector {
  count: number;
  reply: string;
  /** Index of the part expected next. */
  next: number;
  filled: number;
  bytes: Uint8Array;
}

export class SecAggSession {
  readonly vectorLength: number;
  private readonly server: SecAggPlusServer;
  private readonly selected: ReadonlySet<string>;
  private readonly dropped = new Map<string, string>();
  private waiting = new Set<string>();
  private stage: SecAggStage | null = null;
  private wake: (() => void) | null = null;
  private stopped = false;
  /** Masked vectors arriving in parts (SecAggReplyBody.part), by client: dropped when the stage ends. */
  private readonly partial = new Map<string, PartialVector>();

  constructor(private readonly opts: SecAggSessionOptions) {
    const parameters = opts.manifest.reduce((n, t) => n + sizeOfShape(t.shape), 0);
    this.vectorLength = parameters + 1;
    this.selected = new Set(opts.selected);
    this.server = new SecAggPlusServer({
      roundId: `${opts.jobId}:${opts.round}:${opts.attempt}${opts.cohort === undefined ? '' : `:c${opts.cohort}`}`,
      clientIds: opts.selected,
      vectorLength: this.vectorLength,
      neighbourCount: opts.options.neighbourCount,
      threshold: opts.options.threshold,
      quantization: { clippingRange: opts.options.clippingRange, quantizationRange: 2 ** 22 },
      minClients: opts.minClients,
    });
  }

  /** The quantisation the clients use (sent to them in the setup stage). */
  get quantization(): { clippingRange: number; quantizationRange: number } {
    return { clippingRange: this.server.params.clippingRange, quantizationRange: this.server.params.quantizationRange };
  }

  async run(): Promise<SecAggSessionResult> {
    let step = this.server.start();
    while (!step.done) {
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
        link.send(EVENTS.secaggRequest, request);
      }
      const timeout =
        step.stage === 'collect-masked-vectors'
          ? Math.max(this.opts.options.stageTimeoutMs, this.opts.trainingDeadline - this.now())
          : this.opts.options.stageTimeoutMs;
      await this.waitForReplies(timeout);
      this.waiting = new Set();
      // An incomplete multi-part masked vector is no reply: its sender is a dropout.
      this.partial.clear();
      step = await this.server.advance();
    }
    this.stage = null;
    const { sum, contributors, dropouts } = step.result;
    const total = dequantizeSum(sum, contributors.length, this.quantization);
    const weightSum = total[total.length - 1];
    if (!(weightSum > 0)) {
      throw secaggError(
        'SECAGG_RECONSTRUCTION_FAILED',
        `SecAgg+ sum of weights is ${weightSum}; expected a positive number`,
      );
    }
    const weightedDeltaSum: Float64Array[] = [];
    let offset = 0;
    for (const t of this.opts.manifest) {
      const size = sizeOfShape(t.shape);
      weightedDeltaSum.push(total.slice(offset, offset + size));
      offset += size;
    }
    return {
      updates: { weightedDeltaSum, totalWeight: weightSum, clientCount: contributors.length },
      participants: contributors,
      // A client that dropped at unmask still contributed its masked vector: it is a participant.
      failures: this.failuresOf(dropouts.filter((d) => !contributors.includes(d.clientId))),
    };
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
        {
          expected: this.stage,
          got: body.stage,
        },
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
    if (body.stage === 'collect-masked-vectors') {
      if (!data)
        throw secaggError('SECAGG_MESSAGE_INVALID', 'SecAgg+ session: the masked vector must be the message data');
      if ('maskedVector' in r)
        throw secaggError(
          'SECAGG_MESSAGE_INVALID',
          'SecAgg+ session: the masked vector belongs in the message data, not the body',
        );
      const vector = body.part
        ? this.assemblePart(clientId, body, data)
        : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
      if (!vector) return; // more parts to come
      r.maskedVector = vector;
    } else if (data || body.part) {
      throw secaggError(
        'SECAGG_MESSAGE_INVALID',
        `SecAgg+ session: a ${body.stage} reply carries no binary data and has no parts`,
      );
    }
    this.server.receive(r); // validates with the SecAgg+ schemas; keeps nothing on error
    this.partial.delete(clientId);
    this.waiting.delete(clientId);
    if (this.waiting.size === 0) this.wake?.();
  }

  /**
   * Adds one part of a multi-part masked vector; returns the whole vector with the last part, else
   * null. Parts must come in order with the same count and reply text, and add up to exactly the
   * vector's size; a part that breaks this is refused and leaves the parts received so far as they were.
   */
  private assemblePart(clientId: string, body: SecAggReplyBody, data: Uint8Array): Uint8Array | null {
    const part = body.part!;
    const expectedBytes = 4 * this.vectorLength;
    const current = this.partial.get(clientId);
    const next = current?.next ?? 0;
    if (part.index !== next) {
      throw secaggError(
        'SECAGG_MESSAGE_INVALID',
        `SecAgg+ session: expected masked-vector part ${next}, got part ${part.index}`,
      );
    }
    if (current && (part.count !== current.count || body.reply !== current.reply)) {
      throw secaggError(
        'SECAGG_MESSAGE_INVALID',
        `SecAgg+ session: part ${part.index} disagrees with part 0 on the part count or the reply`,
      );
    }
    const filled = current?.filled ?? 0;
    const last = part.index === part.count - 1;
    if (data.length === 0 || filled + data.length > expectedBytes || (last && filled + data.length !== expectedBytes)) {
      throw secaggError(
        'SECAGG_MESSAGE_INVALID',
        `SecAgg+ session: masked-vector parts must add up to exactly ${expectedBytes} bytes; part ${part.index} of ${part.count} brings ${filled} + ${data.length}`,
      );
    }
    const bytes = current?.bytes ?? new Uint8Array(expectedBytes);
    bytes.set(data, filled);
    // Kept until the SecAgg+ server accepts the whole vector, so a refused last part can be resent.
    if (last) return bytes;
    this.partial.set(clientId, {
      count: part.count,
      reply: body.reply,
      next: next + 1,
      filled: filled + data.length,
      bytes,
    });
    return null;
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
    if (this.waiting.delete(clientId) && this.waiting.size === 0) this.wake?.();
  }

  /** Stops waiting (coordinator shutdown); run() then rejects. */
  stop(): void {
    this.stopped = true;
    this.wake?.();
  }

  private waitForReplies(timeoutMs: number): Promise<void> {
    if (this.waiting.size === 0 || this.stopped) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => done(), timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.wake = null;
        resolve();
      };
      this.wake = done;
    });
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
