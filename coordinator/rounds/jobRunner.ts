import { decodeTensors } from '../../shared/codec/modelCodec';
import type { NamedTensor } from '../../shared/codec/tensors';
import { createRng, deriveSeed } from '../../shared/data/random';
import { hasCode, TributaryError, toTributaryError } from '../../shared/errors';
import type { RandomStream } from '../../shared/privacy/randomSource';
import { WakeableWait } from '../../shared/wakeableWait';
import type { CoordinatorAggregationMode, RoundMessage } from '../aggregation/aggregationMode';
import type { Logger } from '../logger';
import type { GlobalModelEvaluator, RoundCompletedEvent, RoundSealer } from '../ports';
import { JobPrivacy } from '../privacy/jobPrivacy';
import type { JobRecord, Store } from '../store/store';
import type { Strategy } from '../strategy/strategy';
import type { ClientDirectory } from '../transport/clientDirectory';
import { type AttemptFailure, RoundAttempt } from './roundAttempt';
import { announceJobFinished, announceRoundClosed } from './roundNotices';
import { ROUND_STATES, RoundStateMachine } from './roundStates';

export interface JobRunnerDeps {
  store: Store;
  directory: ClientDirectory;
  strategy: Strategy;
  /** The job's aggregation mode (coordinator half): it collects each round and reveals the sums. */
  mode: CoordinatorAggregationMode;
  evaluator: GlobalModelEvaluator;
  logger: Logger;
  chunkBytes: number;
  /** Whether rounds keep the parts of their sums (robust strategies, contribution scoring); asked per round. @default never */
  keepParts?: () => boolean;
  /** Called after each committed round; its failure never undoes the commit. */
  onRoundCommitted?: (event: RoundCompletedEvent) => void | Promise<void>;
  /** Told how long each round state lasted (metrics: tributary_round_phase_seconds). */
  onPhase?: (state: string, seconds: number) => void;
  /** Signs and stores each committed round's transcript before its record is saved. @default none (no transcripts) */
  sealer?: RoundSealer;
  /** Where DP jobs draw their central noise. @default node:crypto's CSPRNG (tests pass a seeded stream) */
  privacyRandom?: RandomStream;
  /**
   * Clustered coordinators: this node's lease on the job. Every commit and round record is fenced by
   * `token`; `holds()` is asked before the job is marked finished. A refused write (LEASE_LOST) stops
   * the runner quietly: the job is another node's now. @default a single coordinator (no fencing)
   */
  lease?: { token: number; holds(): Promise<boolean> };
  now?: () => number;
}

/** An attempt's outcome as the round loop sees it: committed (null), failed, or the privacy budget ran out. */
type AttemptOutcome = AttemptFailure | null | { exhausted: TributaryError };

/**
 * Runs one job round by round (the round state machine in roundStates.ts): wait for quorum → select
 * → send tasks → the mode collects until all answer or the deadline → check the quorum → the mode
 * reveals the sums (nothing is revealed for an attempt that misses its quorum) → strategy step →
 * evaluate → commit (roundCommit.ts) → next round. The runner never names a mode. A failed attempt
 * is recorded and retried up to maxRoundRetries times, then the job fails with a reason; it never
 * waits forever. Resumes from the job's last committed round.
 *
 * Jobs with a `privacy` block (coordinator/privacy/jobPrivacy.ts): after selection, an attempt that
 * would spend more than the budget at the round's real sampling rate (selected / eligible) is not
 * run, and the job completes with PRIVACY_BUDGET_EXHAUSTED as its reason; tasks carry the round's
 * clipping norm, and the revealed sum is privatised (and the budget spent persisted) before the strategy step.
 */
export class JobRunner {
  readonly machine: RoundStateMachine;
  private job: JobRecord;
  private weights: NamedTensor[] = [];
  private modelBytes: Buffer = Buffer.alloc(0);
  private strategyState: NamedTensor[] | undefined;
  private attempt: RoundAttempt | null = null;
  private runningRound = 0;
  private stopped = false;
  private privacy: JobPrivacy | undefined;
  private readonly membership = new WakeableWait();
  private readonly unsubscribe: () => void;

  constructor(
    job: JobRecord,
    private readonly deps: JobRunnerDeps,
  ) {
    this.job = job;
    this.machine = new RoundStateMachine(deps.onPhase);
    this.unsubscribe = deps.directory.onChange((e) => {
      if (e.jobId !== this.job.id) return;
      if (e.type === 'left') this.attempt?.dropped(e.clientId, `DISCONNECTED${e.reason ? `: ${e.reason}` : ''}`);
      this.membership.wake();
    });
  }

  get jobId(): string {
    return this.job.id;
  }

  /** The round being run now (0 before the first); the job record's `currentRound` is the last committed one. */
  get runningRoundNumber(): number {
    return this.runningRound;
  }

  /** Codec bytes of the committed global model of `round`, if it is the one in memory. */
  modelBytesFor(round: number): Buffer | null {
    return round === this.job.currentRound && this.modelBytes.length > 0 ? this.modelBytes : null;
  }

  /** Runs until the job completes, fails or stop() is called. Never throws. */
  async run(): Promise<JobRecord> {
    try {
      await this.loadCheckpoint();
      this.privacy = JobPrivacy.of(this.job, this.deps.privacyRandom);
      for (let round = this.job.currentRound + 1; round <= this.job.spec.rounds && !this.stopped; round++) {
        if (!(await this.runRound(round))) return this.job;
      }
      if (!this.stopped) await this.finishJob('completed');
    } catch (err) {
      if (hasCode(err, 'LEASE_LOST')) this.leaseLost(err.message);
      if (!this.stopped) {
        const e = toTributaryError(err);
        this.deps.logger.error('job runner failed', { jobId: this.job.id, code: e.code, message: e.message });
        await this.finishJob('failed', `${e.code}: ${e.message}`).catch(() => undefined);
      }
    } finally {
      this.unsubscribe();
    }
    return this.job;
  }

  /** Stops at the next await point (used at shutdown; the job stays `running` for a later resume). */
  stop(): void {
    this.stopped = true;
    this.attempt?.stop();
    this.membership.wake();
  }

  /** A verified round message (upload chunk or commit, SecAgg+ reply) for the running round's collection. */
  receive(clientId: string, round: number, message: RoundMessage): void {
    if (round !== this.runningRound) {
      throw new TributaryError('ROUND_WRONG', `Expected round ${this.runningRound}, got ${round}.`);
    }
    if (!this.attempt) throw new TributaryError('ROUND_LATE_UPDATE', `Round ${round} is not collecting updates.`);
    this.attempt.receive(clientId, message);
  }

  private async loadCheckpoint(): Promise<void> {
    const checkpoint = await this.deps.store.loadCheckpoint(this.job.id, this.job.currentRound);
    if (!checkpoint) {
      throw new TributaryError(
        'JOB_NO_MODEL',
        `Job ${this.job.id} has no checkpoint for round ${this.job.currentRound}.`,
      );
    }
    this.modelBytes = Buffer.from(checkpoint.weights);
    this.weights = decodeTensors(this.modelBytes, { expected: this.job.weightManifest });
    this.strategyState = checkpoint.strategyState ? decodeTensors(checkpoint.strategyState) : undefined;
  }

  /** Runs attempts of one round until one commits (true) or retries are exhausted (false). */
  private async runRound(round: number): Promise<boolean> {
    const previous = (await this.deps.store.listRounds(this.job.id)).filter((r) => r.round === round);
    let attempt = previous.length;
    // Clients a failed attempt was attributed to sit out the retries of this round.
    const excluded = new Set<string>();
    for (let tries = previous.filter((r) => r.status === 'failed').length; !this.stopped; tries++, attempt++) {
      const startedAt = new Date(this.now());
      const failure = await this.runAttempt(round, attempt, startedAt, excluded);
      if (!failure) return true;
      if (!('exhausted' in failure) && failure.reason.startsWith('LEASE_LOST')) this.leaseLost(failure.reason);
      if (this.stopped) return false;
      if ('exhausted' in failure) {
        const e = failure.exhausted;
        await this.finishJob('completed', `${e.code}: ${e.message}`);
        return false;
      }
      await this.recordFailure(round, attempt, startedAt, failure);
      for (const clientId of failure.blamed ?? []) excluded.add(clientId);
      if (tries + 1 > this.job.spec.maxRoundRetries) {
        await this.finishJob('failed', `Round ${round} failed ${tries + 1} time(s): ${failure.reason}`);
        return false;
      }
      this.deps.logger.info('retrying round', {
        jobId: this.job.id,
        round,
        attempt: attempt + 1,
        reason: failure.reason,
      });
    }
    return false;
  }

  /** One attempt; resolves null once committed, else with why it failed. */
  private async runAttempt(
    round: number,
    attempt: number,
    startedAt: Date,
    excluded: ReadonlySet<string>,
  ): Promise<AttemptOutcome> {
    const spec = this.job.spec;
    this.runningRound = round;
    this.machine.to(ROUND_STATES.waitingForQuorum);
    const members = () => this.deps.directory.members(this.job.id).filter((m) => !excluded.has(m));
    const enough = () => this.stopped || members().length >= spec.minClients;
    const quorum = await this.membership.until(enough, spec.quorumTimeoutMs);
    const none = { selected: [], participants: [], failures: [] };
    if (this.stopped) return { reason: 'stopped', ...none };
    if (!quorum) {
      const connected = `${members().length} of the ${spec.minClients} required clients connected`;
      return { reason: `ROUND_QUORUM_NOT_MET: ${connected} within ${spec.quorumTimeoutMs} ms`, ...none };
    }
    this.machine.to(ROUND_STATES.selecting);
    const rng = createRng(deriveSeed(spec.seed, 'sample', round, attempt));
    const available = members();
    const plan = this.deps.strategy.configureTrain({ round, available, rng });
    // The accountant's q: this round's real sampling rate among the clients it could have selected.
    const samplingRate = plan.selected.length / available.length;
    const exhausted = this.privacy?.exhaustedAt(samplingRate);
    if (exhausted) return { exhausted };
    this.machine.to(ROUND_STATES.collecting);
    const input = {
      job: this.job,
      weights: this.weights,
      strategyState: this.strategyState,
      round,
      attempt,
      startedAt,
      plan,
      samplingRate,
    };
    const deps = { ...this.deps, machine: this.machine, now: () => this.now(), privacy: this.privacy };
    const running = new RoundAttempt(deps, input);
    this.attempt = running;
    const outcome = await running.run().finally(() => {
      this.attempt = null;
    });
    if (!('committed' in outcome)) return outcome;
    this.job = outcome.committed.job;
    this.weights = outcome.weights;
    this.modelBytes = outcome.committed.bytes;
    this.strategyState = outcome.strategyState;
    await this.notifyCommitted(outcome.event);
    return null;
  }

  private async notifyCommitted(event: RoundCompletedEvent): Promise<void> {
    try {
      await this.deps.onRoundCommitted?.(event);
    } catch (err) {
      // An observer's failure (e.g. a chain RPC down) must not undo a committed round.
      const fields = { jobId: this.job.id, round: event.round.round, message: String(err) };
      this.deps.logger.error('round-committed observer failed', fields);
    }
  }

  private async recordFailure(round: number, attempt: number, startedAt: Date, failure: AttemptFailure): Promise<void> {
    if (this.machine.state !== ROUND_STATES.failed) this.machine.to(ROUND_STATES.failed);
    this.deps.logger.info('round attempt failed', { jobId: this.job.id, round, attempt, reason: failure.reason });
    const { reason, selected, participants, failures } = failure;
    const finishedAt = new Date(this.now());
    const guard = this.deps.lease ? { fence: this.deps.lease.token } : undefined;
    await this.deps.store.saveRound(
      {
        jobId: this.job.id,
        round,
        attempt,
        status: 'failed',
        selected,
        participants,
        failures,
        metrics: {},
        failureReason: reason,
        startedAt,
        finishedAt,
      },
      guard,
    );
    announceRoundClosed(this.deps.directory, this.job.id, selected, round, 'failed');
  }

  /** This node lost the job's lease: stop without touching the job (its new owner runs it). */
  private leaseLost(why: string): void {
    if (!this.stopped) this.deps.logger.info('job lease lost; stopping', { jobId: this.job.id, why });
    this.stop();
  }

  private async finishJob(status: 'completed' | 'failed', reason?: string): Promise<void> {
    if (this.deps.lease && !(await this.deps.lease.holds())) {
      this.leaseLost(`not finishing the job as ${status}: the lease is another node's`);
      return;
    }
    this.job = await this.deps.store.updateJob(this.job.id, { status, ...(reason ? { failureReason: reason } : {}) });
    this.deps.logger.info(`job ${status}`, { jobId: this.job.id, reason });
    announceJobFinished(this.deps.directory, this.job.id, status, reason);
  }

  private now(): number {
    return this.deps.now ? this.deps.now() : Date.now();
  }
}
