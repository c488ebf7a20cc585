import { contentHash, decodeTensors, encodeTensors } from '../../shared/codec/modelCodec';
import type { NamedTensor } from '../../shared/codec/tensors';
import { TributaryError, toTributaryError } from '../../shared/errors';
import { EVENTS, type RoundTask } from '../../shared/schemas/messages';
import type { SecAggReplyBody, UpdateChunkBody, UpdateCommitBody } from '../../shared/schemas/messages';
import { secaggOptionsOf } from '../../shared/schemas/jobSpec';
import { splitCohorts, sumCohortUpdates } from '../aggregation/secaggCohorts';
import { SecAggSession, type SecAggSessionResult } from '../aggregation/secaggSession';
import type { UpdateAggregatorFactory } from '../aggregation/updateAggregator';
import type { Logger } from '../logger';
import type { JobRecord, RoundRecord, Store } from '../store/store';
import type { AggregatedUpdates, Strategy } from '../strategy/strategy';
import type { ClientDirectory } from '../transport/clientDirectory';
import { RoundCollector, type CollectionResult } from './roundCollector';
import { ROUND_STATES, RoundStateMachine } from './roundStates';
import { createRng, deriveSeed } from '../../shared/data/random';

/** What a collection phase yields: the sums (or why the attempt failed), who took part and who failed. */
type Collected =
  | (CollectionResult & {
      updates: () => AggregatedUpdates | Promise<AggregatedUpdates>;
      numExamples: (u: AggregatedUpdates) => number;
      /** secagg: the sum of each cohort that counted, with its contributors. */
      cohorts?: CohortSum[];
      /** none, when the aggregator keeps them: each client's own n_i·Δ_i (one-member "cohorts"). */
      clientUpdates?: CohortSum[];
    })
  | { failed: string; participants: string[]; failures: RoundRecord['failures'] };

/** One secure-aggregation cohort's sum (Σ ratio_i·Δ_i, Σ ratio_i as totalWeight) and its contributors. */
export interface CohortSum {
  members: string[];
  updates: AggregatedUpdates;
}

/** What the round-completed hook receives (contracts and contribution scoring plug in here). */
export interface RoundCompletedEvent {
  job: JobRecord;
  round: RoundRecord;
  weights: readonly NamedTensor[];
  modelHash: string;
  /**
   * secagg rounds only: the sum of every cohort that counted (one cohort of all contributors unless
   * `secagg.cohortSize` is set); their sums add up to the round's aggregate. Never persisted.
   */
  cohorts?: CohortSum[];
  /**
   * `none` rounds whose aggregator keeps per-client updates (contribution scoring): each client's
   * n_i·Δ_i as a one-member CohortSum. Never persisted.
   */
  clientUpdates?: CohortSum[];
  /** The global model the round started from (what the updates are deltas of). */
  previousWeights: readonly NamedTensor[];
}

/** Evaluates a global model on the buyer's validation set; null when there is none. */
export interface GlobalModelEvaluator {
  evaluate(job: JobRecord, weights: readonly NamedTensor[]): Promise<Record<string, number> | null>;
}

export interface JobRunnerDeps {
  store: Store;
  directory: ClientDirectory;
  strategy: Strategy;
  createAggregator: UpdateAggregatorFactory;
  evaluator: GlobalModelEvaluator;
  logger: Logger;
  chunkBytes: number;
  onRoundCompleted?: (event: RoundCompletedEvent) => void | Promise<void>;
  now?: () => number;
}

/**
 * Runs one job round by round (the round state machine in roundStates.ts):
 * wait for quorum → select → send tasks → collect until all answer or the deadline → aggregate if at
 * least minClients answered (with `secagg`, collection is one SecAgg+ session per cohort, each yielding only its cohort's sum;
 * with `paillier`, the aggregator multiplies ciphertexts and the job's key holder decrypts the sum)
 * → evaluate → commit (checkpoint, round record, job) → next round.
 * A failed attempt is recorded and retried up to maxRoundRetries times, then the job fails with a
 * reason; it never waits forever. Resumes from the job's last committed round.
 */
export class JobRunner {
  readonly machine = new RoundStateMachine();
  private job: JobRecord;
  private weights: NamedTensor[] = [];
  private modelBytes: Buffer = Buffer.alloc(0);
  private strategyState: NamedTensor[] | undefined;
  private collector: RoundCollector | null = null;
  /** The SecAgg+ sessions of the running attempt, one per cohort, by member client id. */
  private sessions = new Map<string, SecAggSession>();
  private runningRound = 0;
  private stopped = false;
  private wakeUp: (() => void) | null = null;
  private readonly unsubscribe: () => void;

  constructor(
    job: JobRecord,
    private readonly deps: JobRunnerDeps,
  ) {
    this.job = job;
    this.unsubscribe = deps.directory.onChange((e) => {
      if (e.jobId !== this.job.id) return;
      if (e.type === 'left') {
        this.collector?.markFailed(e.clientId, `DISCONNECTED${e.reason ? `: ${e.reason}` : ''}`);
        this.sessions.get(e.clientId)?.markDropped(e.clientId, e.reason ?? 'disconnected');
      }
      this.wakeUp?.();
    });
  }

  get jobId(): string {
    return this.job.id;
  }

  /** The round currently being run (0 before the first). */
  get currentRound(): number {
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
      const spec = this.job.spec;
      for (let round = this.job.currentRound + 1; round <= spec.rounds && !this.stopped; round++) {
        const committed = await this.runRound(round);
        if (!committed) return this.job;
      }
      if (!this.stopped) await this.finishJob('completed');
    } catch (err) {
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
    this.collector?.close();
    for (const session of new Set(this.sessions.values())) session.stop();
    this.wakeUp?.();
  }

  /** A `secagg:reply` from an authenticated client, for the SecAgg+ session of the current round. */
  handleSecAggReply(clientId: string, round: number, body: SecAggReplyBody, data: Uint8Array | undefined): void {
    if (round !== this.runningRound) {
      throw new TributaryError('ROUND_WRONG', `Expected round ${this.runningRound}, got ${round}.`);
    }
    if (this.sessions.size === 0)
      throw new TributaryError('ROUND_LATE_UPDATE', `Round ${round} is not running secure aggregation.`);
    // Each client belongs to exactly one cohort: its reply goes to that cohort's session.
    const session = this.sessions.get(clientId);
    if (!session)
      throw new TributaryError('ROUND_NOT_SELECTED', `The client is not in round ${round}'s secure aggregation.`);
    session.receive(clientId, body, data);
  }

  handleChunk(clientId: string, round: number, body: UpdateChunkBody, data: Uint8Array | undefined): void {
    this.collectorFor(round).handleChunk(clientId, body, data);
  }

  handleCommit(clientId: string, round: number, body: UpdateCommitBody): void {
    this.collectorFor(round).handleCommit(clientId, body);
  }

  private collectorFor(round: number): RoundCollector {
    if (this.job.spec.secureAggregation === 'secagg') {
      throw new TributaryError(
        'VALIDATION_FAILED',
        `Job ${this.job.id} uses secure aggregation "${this.job.spec.secureAggregation}"; updates travel as secagg:reply messages, not uploads.`,
      );
    }
    if (round !== this.runningRound) {
      throw new TributaryError('ROUND_WRONG', `Expected round ${this.runningRound}, got ${round}.`);
    }
    if (!this.collector?.isOpen) {
      throw new TributaryError('ROUND_LATE_UPDATE', `Round ${round} is not collecting updates.`);
    }
    return this.collector;
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
    const failuresBefore = previous.filter((r) => r.status === 'failed').length;
    for (let tries = failuresBefore; !this.stopped; tries++, attempt++) {
      const outcome = await this.runAttempt(round, attempt);
      if (outcome === 'committed') return true;
      if (this.stopped) return false;
      if (tries + 1 > this.job.spec.maxRoundRetries) {
        await this.finishJob('failed', `Round ${round} failed ${tries + 1} time(s): ${outcome}`);
        return false;
      }
      this.deps.logger.info('retrying round', { jobId: this.job.id, round, attempt: attempt + 1, reason: outcome });
    }
    return false;
  }

  /** One attempt. Returns 'committed' or the failure reason. */
  private async runAttempt(round: number, attempt: number): Promise<'committed' | string> {
    const spec = this.job.spec;
    const m = this.machine;
    const startedAt = new Date(this.now());
    this.runningRound = round;
    m.to(ROUND_STATES.waitingForQuorum);

    const quorum = await this.waitForQuorum(spec.minClients, spec.quorumTimeoutMs);
    if (this.stopped) return 'stopped';
    if (!quorum) {
      const members = this.deps.directory.members(this.job.id).length;
      return this.recordFailure(
        round,
        attempt,
        startedAt,
        [],
        [],
        [],
        `ROUND_QUORUM_NOT_MET: ${members} of the ${spec.minClients} required clients connected within ${spec.quorumTimeoutMs} ms`,
      );
    }

    m.to(ROUND_STATES.selecting);
    const rng = createRng(deriveSeed(spec.seed, 'sample', round, attempt));
    const plan = this.deps.strategy.configureTrain({ round, available: this.deps.directory.members(this.job.id), rng });

    m.to(ROUND_STATES.collecting);
    const task: RoundTask = {
      jobId: this.job.id,
      round,
      attempt,
      config: plan.config,
      modelHash: this.job.modelHash,
      modelPath: `/v1/jobs/${this.job.id}/checkpoints/${this.job.currentRound}`,
      deadline: this.now() + spec.roundDeadlineMs,
      chunkBytes: this.deps.chunkBytes,
    };
    // `none` and `paillier` collect uploads; `secagg` runs a SecAgg+ session.
    const collected =
      spec.secureAggregation === 'secagg'
        ? await this.collectSecAgg(task, plan.selected)
        : await this.collectPlaintext(task, plan.selected);
    if (this.stopped) return 'stopped';
    if ('failed' in collected) {
      return this.recordFailure(
        round,
        attempt,
        startedAt,
        plan.selected,
        collected.participants,
        collected.failures,
        collected.failed,
      );
    }

    if (collected.participants.length < spec.minClients) {
      return this.recordFailure(
        round,
        attempt,
        startedAt,
        plan.selected,
        collected.participants,
        collected.failures,
        `ROUND_QUORUM_NOT_MET: ${collected.participants.length} of the ${spec.minClients} required updates arrived`,
      );
    }

    try {
      m.to(ROUND_STATES.aggregating);
      const updates = await collected.updates();
      const next = this.deps.strategy.aggregateTrain(this.weights, updates, this.strategyState);
      const clientMetrics = this.deps.strategy.aggregateMetrics(collected.evaluations);

      m.to(ROUND_STATES.evaluating);
      const validation = await this.deps.evaluator.evaluate(this.job, next.weights);

      m.to(ROUND_STATES.committing);
      const bytes = encodeTensors(next.weights);
      const modelHash = contentHash(bytes);
      const finishedAt = new Date(this.now());
      const metrics: Record<string, number> = {
        numExamples: collected.numExamples(updates),
        durationMs: finishedAt.getTime() - startedAt.getTime(),
      };
      for (const [k, v] of Object.entries(clientMetrics)) metrics[`train_${k}`] = v;
      if (validation) for (const [k, v] of Object.entries(validation)) metrics[`validation_${k}`] = v;
      const previousWeights = this.weights;
      const record: RoundRecord = {
        jobId: this.job.id,
        round,
        attempt,
        status: 'completed',
        selected: plan.selected,
        participants: collected.participants,
        failures: collected.failures,
        metrics,
        modelHash,
        startedAt,
        finishedAt,
        ...(collected.cohorts ? { cohorts: collected.cohorts.map((c) => [...c.members]) } : {}),
      };
      // Order matters for resume: the checkpoint first, the job's round pointer last.
      await this.deps.store.saveCheckpoint({
        jobId: this.job.id,
        round,
        modelHash,
        weights: bytes,
        strategyState: next.state ? encodeTensors(next.state) : undefined,
        createdAt: finishedAt,
      });
      await this.deps.store.saveRound(record);
      await this.bumpParticipants(collected.participants, finishedAt);
      this.job = await this.deps.store.updateJob(this.job.id, { currentRound: round, modelHash });
      this.weights = next.weights;
      this.modelBytes = bytes;
      this.strategyState = next.state;
      m.to(ROUND_STATES.completed);
      this.announceRoundClosed(plan.selected, round, 'completed');
      this.deps.logger.info('round committed', {
        jobId: this.job.id,
        round,
        participants: collected.participants.length,
        ...metrics,
      });
      if (this.deps.onRoundCompleted) {
        try {
          await this.deps.onRoundCompleted({
            job: this.job,
            round: record,
            weights: this.weights,
            modelHash,
            previousWeights,
            ...(collected.cohorts ? { cohorts: collected.cohorts } : {}),
            ...(collected.clientUpdates ? { clientUpdates: collected.clientUpdates } : {}),
          });
        } catch (err) {
          // A hook's failure (e.g. a chain RPC down) must not undo a committed round.
          this.deps.logger.error('round-completed hook failed', { jobId: this.job.id, round, message: String(err) });
        }
      }
      return 'committed';
    } catch (err) {
      const e = toTributaryError(err);
      return this.recordFailure(
        round,
        attempt,
        startedAt,
        plan.selected,
        collected.participants,
        collected.failures,
        `${e.code}: ${e.message}`,
      );
    }
  }

  /**
   * Upload collection: every selected client uploads its encoded (`none`) or encrypted (`paillier`)
   * update to the aggregator. With `paillier` the sums come from the key holder (`finish`), clients
   * send no metrics, and Σ ratio_i is reported in examples as with secagg.
   */
  private async collectPlaintext(task: RoundTask, selected: string[]): Promise<Collected> {
    const aggregator = this.deps.createAggregator(this.job.weightManifest, {
      round: task.round,
      attempt: task.attempt,
    });
    const collector = new RoundCollector(
      task.round,
      selected,
      aggregator,
      this.deps.chunkBytes,
      this.job.spec.roundDeadlineMs,
    );
    this.collector = collector;
    this.sendTasks(task, selected, (clientId) => collector.markFailed(clientId, 'DISCONNECTED'));
    await collector.done;
    const collected = collector.close();
    this.collector = null;
    const paillier = this.job.spec.secureAggregation === 'paillier' ? this.job.spec.paillier : undefined;
    if (paillier) {
      return {
        ...collected,
        evaluations: [],
        updates: () => (aggregator.finish ? aggregator.finish() : aggregator.result()),
        numExamples: (u) => Math.round(u.totalWeight * paillier.maxExampleWeight),
      };
    }
    const clientUpdates = (aggregator.clientUpdates?.() ?? []).map((c) => ({
      members: [c.clientId],
      updates: c.updates,
    }));
    return {
      ...collected,
      updates: () => aggregator.result(),
      numExamples: (u) => u.totalWeight,
      ...(clientUpdates.length > 0 ? { clientUpdates } : {}),
    };
  }

  /**
   * SecAgg+ collection: the tasks start training, then one SecAggSession per cohort runs the protocol
   * stages concurrently; the coordinator learns only each cohort's sum. Without `secagg.cohortSize`
   * the whole selection is one cohort. A cohort that aborts is dropped (its members become failures)
   * while the others' sums still count; runAttempt then checks the contributors against minClients.
   * No per-client metrics are collected (they would leak).
   */
  private async collectSecAgg(task: RoundTask, selected: string[]): Promise<Collected> {
    const spec = this.job.spec;
    const options = secaggOptionsOf(spec);
    const cohortSize = options.cohortSize;
    const cohorts = splitCohorts(selected, cohortSize, { seed: spec.seed, round: task.round, attempt: task.attempt });
    const sessions: SecAggSession[] = [];
    try {
      cohorts.forEach((members, i) => {
        sessions.push(
          new SecAggSession({
            jobId: this.job.id,
            round: task.round,
            attempt: task.attempt,
            selected: members,
            manifest: this.job.weightManifest,
            options,
            // A cohort's sum must cover at least cohortSize clients; one whole-round cohort needs minClients.
            minClients: cohortSize === undefined ? spec.minClients : Math.min(cohortSize, members.length),
            trainingDeadline: task.deadline,
            directory: this.deps.directory,
            now: this.deps.now,
            ...(cohortSize === undefined ? {} : { cohort: i }),
          }),
        );
      });
    } catch (err) {
      const e = toTributaryError(err);
      return { failed: `${e.code}: ${e.message}`, participants: [], failures: [] };
    }
    this.sessions = new Map(
      cohorts.flatMap((members, i) => members.map((clientId) => [clientId, sessions[i]] as const)),
    );
    this.sendTasks(task, selected, (clientId) => this.sessions.get(clientId)?.markDropped(clientId, 'DISCONNECTED'));
    let results: Array<PromiseSettledResult<SecAggSessionResult>>;
    try {
      results = await Promise.all(
        sessions.map((session) =>
          session.run().then(
            (value): PromiseSettledResult<SecAggSessionResult> => ({ status: 'fulfilled', value }),
            (reason: unknown): PromiseSettledResult<SecAggSessionResult> => ({ status: 'rejected', reason }),
          ),
        ),
      );
    } finally {
      this.sessions = new Map();
    }
    const counted: CohortSum[] = [];
    const participants: string[] = [];
    const failures: RoundRecord['failures'] = [];
    const aborted: string[] = [];
    results.forEach((r, i) => {
      if (r.status === 'fulfilled') {
        counted.push({ members: [...r.value.participants], updates: r.value.updates });
        participants.push(...r.value.participants);
        failures.push(...r.value.failures);
        return;
      }
      const e = toTributaryError(r.reason);
      const reason = `${e.code}: ${e.message}`;
      aborted.push(cohortSize === undefined ? reason : `cohort ${i}: ${reason}`);
      // Members that dropped keep their own reason; the rest lose their input with the cohort.
      const own = sessions[i].failures;
      failures.push(...own);
      if (cohortSize === undefined) return;
      const failed = new Set(own.map((f) => f.clientId));
      for (const clientId of cohorts[i]) {
        if (!failed.has(clientId))
          failures.push({ clientId, reason: `SECAGG_COHORT_ABORTED (cohort ${i}): ${reason}` });
      }
    });
    if (counted.length === 0) {
      const first = toTributaryError((results[0] as PromiseRejectedResult).reason);
      const failed =
        cohortSize === undefined || results.length === 1
          ? `${first.code}: ${first.message}`
          : `${first.code}: all ${results.length} SecAgg+ cohorts aborted (${aborted.join('; ')})`;
      return { failed, participants: [], failures };
    }
    return {
      participants,
      failures,
      evaluations: [],
      updates: () => sumCohortUpdates(counted.map((c) => c.updates)),
      // totalWeight is Σ min(n_i, maxExampleWeight) / maxExampleWeight; report it in examples.
      numExamples: (u) => Math.round(u.totalWeight * options.maxExampleWeight),
      cohorts: counted,
    };
  }

  private sendTasks(task: RoundTask, selected: string[], onMissing: (clientId: string) => void): void {
    for (const clientId of selected) {
      const link = this.deps.directory.link(clientId);
      if (link) link.send(EVENTS.roundTask, task);
      else onMissing(clientId);
    }
  }

  private async recordFailure(
    round: number,
    attempt: number,
    startedAt: Date,
    selected: string[],
    participants: string[],
    failures: RoundRecord['failures'],
    reason: string,
  ): Promise<string> {
    if (this.machine.state !== ROUND_STATES.failed) this.machine.to(ROUND_STATES.failed);
    this.deps.logger.info('round attempt failed', { jobId: this.job.id, round, attempt, reason });
    await this.deps.store.saveRound({
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
      finishedAt: new Date(this.now()),
    });
    this.announceRoundClosed(selected, round, 'failed');
    return reason;
  }

  private async bumpParticipants(participants: string[], at: Date): Promise<void> {
    const existing = new Map((await this.deps.store.listParticipants(this.job.id)).map((p) => [p.clientId, p]));
    for (const clientId of participants) {
      const p = existing.get(clientId);
      await this.deps.store.saveParticipant({
        ...p, // keeps fields set at join (the payout address)
        jobId: this.job.id,
        clientId,
        joinedAt: p?.joinedAt ?? at,
        lastSeenAt: at,
        roundsCompleted: (p?.roundsCompleted ?? 0) + 1,
      });
    }
  }

  private waitForQuorum(min: number, timeoutMs: number): Promise<boolean> {
    return new Promise((resolve) => {
      const check = () => {
        if (this.stopped) return finish(false);
        if (this.deps.directory.members(this.job.id).length >= min) finish(true);
      };
      const timer = setTimeout(() => finish(false), timeoutMs);
      const finish = (ok: boolean) => {
        clearTimeout(timer);
        this.wakeUp = null;
        resolve(ok);
      };
      this.wakeUp = check;
      check();
    });
  }

  private announceRoundClosed(selected: string[], round: number, status: 'completed' | 'failed'): void {
    for (const clientId of selected)
      this.deps.directory.link(clientId)?.send(EVENTS.roundClosed, { jobId: this.job.id, round, status });
  }

  private async finishJob(status: 'completed' | 'failed', reason?: string): Promise<void> {
    this.job = await this.deps.store.updateJob(this.job.id, { status, ...(reason ? { failureReason: reason } : {}) });
    this.deps.logger.info(`job ${status}`, { jobId: this.job.id, reason });
    for (const clientId of this.deps.directory.members(this.job.id)) {
      this.deps.directory
        .link(clientId)
        ?.send(EVENTS.jobFinished, { jobId: this.job.id, status, ...(reason ? { reason } : {}) });
    }
  }

  private now(): number {
    return this.deps.now ? this.deps.now() : Date.now();
  }
}
