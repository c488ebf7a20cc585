import type { NamedTensor } from '../../shared/codec/tensors';
import { TributaryError, toTributaryError } from '../../shared/errors';
import type { RoundTask } from '../../shared/schemas/messages';
import type { Revealed, RoundCollection, RoundMessage } from '../aggregation/aggregationMode';
import type { RoundCompletedEvent } from '../ports';
import type { JobPrivacy } from '../privacy/jobPrivacy';
import type { JobRecord, RoundFailure, RoundPrivacyRecord } from '../store/store';
import type { ClientEvaluation, TrainPlan } from '../strategy/strategy';
import type { JobRunnerDeps } from './jobRunner';
import { commitRound, type RoundCommitted } from './roundCommit';
import { announceRoundClosed, roundMetrics } from './roundNotices';
import { ROUND_STATES, type RoundStateMachine } from './roundStates';

/** An attempt that did not commit: why, and who was involved. */
export interface AttemptFailure {
  reason: string;
  selected: string[];
  participants: string[];
  failures: RoundFailure[];
  /** Clients the failure is attributed to (their contribution made the step invalid): left out of the retry. */
  blamed?: string[];
}

/** What one attempt starts from. */
export interface AttemptInput {
  job: JobRecord;
  weights: NamedTensor[];
  strategyState: NamedTensor[] | undefined;
  round: number;
  attempt: number;
  startedAt: Date;
  plan: TrainPlan;
  /** selected / eligible clients: the round's real sampling rate (the privacy accountant's q). */
  samplingRate: number;
}

/** A committed attempt: what the runner carries on with. */
export interface AttemptCommitted {
  committed: RoundCommitted;
  weights: NamedTensor[];
  strategyState: NamedTensor[] | undefined;
  event: RoundCompletedEvent;
}

/**
 * One attempt at one round, after its clients were selected: send the tasks, let the job's mode
 * collect, check the quorum before anything is revealed, have the mode reveal the sums, take the
 * strategy step, evaluate, and commit (roundCommit.ts). Never names a mode. A DP job's sums are
 * privatised (JobPrivacy) as soon as they are revealed, and what that spent is stored before anything
 * else happens.
 */
export class RoundAttempt {
  private collection: RoundCollection | null = null;
  private stopped = false;

  constructor(
    private readonly deps: JobRunnerDeps & { machine: RoundStateMachine; now(): number; privacy?: JobPrivacy },
    private readonly input: AttemptInput,
  ) {}

  /** A verified round message for this attempt's collection. */
  receive(clientId: string, message: RoundMessage): void {
    if (!this.collection) {
      throw new TributaryError('ROUND_LATE_UPDATE', `Round ${this.input.round} is not collecting updates.`);
    }
    this.collection.receive(clientId, message);
  }

  dropped(clientId: string, reason: string): void {
    this.collection?.dropped(clientId, reason);
  }

  stop(): void {
    this.stopped = true;
    this.collection?.stop();
  }

  /** Runs the attempt: the committed round, or why it failed. Never throws. */
  async run(): Promise<AttemptCommitted | AttemptFailure> {
    const { job, round, attempt, plan } = this.input;
    const selected = plan.selected;
    const deadline = this.deps.now() + job.spec.roundDeadlineMs;
    const privacy = this.deps.privacy?.roundContext();
    const collection = this.deps.mode.openCollection({
      job,
      round,
      attempt,
      selected,
      deadline,
      chunkBytes: this.deps.chunkBytes,
      keepParts: this.deps.keepParts?.() ?? false,
      directory: this.deps.directory,
      logger: this.deps.logger,
      now: () => this.deps.now(),
      ...(privacy ? { privacy } : {}),
    });
    this.collection = collection;
    this.sendTasks(collection, deadline, privacy?.clippingNorm);
    const collected = await collection.collect();
    if (this.stopped) return { reason: 'stopped', selected, participants: [], failures: [] };
    const { participants, failures } = collected;
    const short = participants.length < job.spec.minClients;
    if ('failed' in collected || short) {
      // Nothing was revealed; abandon the rest so no part of this attempt ever is.
      collection.stop();
      const reason =
        'failed' in collected
          ? collected.failed
          : `ROUND_QUORUM_NOT_MET: ${participants.length} of the ${job.spec.minClients} required updates arrived`;
      return { reason, selected, participants, failures, blamed: collected.blamed };
    }
    try {
      return await this.aggregateAndCommit(collection, collected.evaluations);
    } catch (err) {
      const e = toTributaryError(err);
      const members = (e.details as { members?: unknown } | undefined)?.members;
      const blamed = Array.isArray(members) ? members.filter((m): m is string => selected.includes(m as string)) : [];
      const reason = `${e.code}: ${e.message}`;
      const attributed = blamed.map((clientId) => ({ clientId, reason: `${e.code}: left out of this round's retry` }));
      // Clients the collection already refused as saboteurs sit out the retry too (their failure is recorded).
      const all = [...new Set([...(collected.blamed ?? []), ...blamed])];
      return { reason, selected, participants, failures: [...failures, ...attributed], blamed: all };
    }
  }

  private sendTasks(collection: RoundCollection, deadline: number, clippingNorm: number | undefined): void {
    const { job, round, attempt, plan } = this.input;
    const task: RoundTask = {
      jobId: job.id,
      round,
      attempt,
      config: clippingNorm === undefined ? plan.config : { ...plan.config, clippingNorm },
      modelHash: job.modelHash,
      modelPath: `/v1/jobs/${job.id}/checkpoints/${job.currentRound}`,
      deadline,
      chunkBytes: this.deps.chunkBytes,
    };
    for (const clientId of plan.selected) {
      const link = this.deps.directory.link(clientId);
      if (link) link.send('round:task', task);
      else collection.dropped(clientId, 'DISCONNECTED');
    }
  }

  /** Reveals the sums, takes the strategy step, evaluates and commits; throws a coded error when the attempt fails. */
  private async aggregateAndCommit(
    collection: RoundCollection,
    evaluations: ClientEvaluation[],
  ): Promise<AttemptCommitted> {
    const { job, weights, strategyState, round, attempt, startedAt, plan } = this.input;
    const { machine, strategy } = this.deps;
    machine.to(ROUND_STATES.aggregating);
    const { revealed, privacy } = await this.privatise(await collection.reveal());
    const { participants, failures, parts, partKind } = revealed;
    if (participants.length < job.spec.minClients) {
      const message = `${participants.length} of the ${job.spec.minClients} required updates could be unmasked`;
      throw new TributaryError('ROUND_QUORUM_NOT_MET', message);
    }
    const next = strategy.aggregateTrain(weights, revealed.sum, strategyState, parts);
    machine.to(ROUND_STATES.evaluating);
    const validation = await this.deps.evaluator.evaluate(job, next.weights);
    machine.to(ROUND_STATES.committing);
    const finishedAt = new Date(this.deps.now());
    const clientMetrics = strategy.aggregateMetrics(evaluations);
    const metrics = roundMetrics({
      totalWeight: revealed.sum.totalWeight,
      startedAt,
      finishedAt,
      clientMetrics,
      validation,
    });
    const cohorts = partKind === 'cohort' && parts ? { cohorts: parts.map((p) => [...p.members]) } : {};
    const selected = plan.selected;
    const committed = await commitRound(this.deps.store, {
      job,
      record: {
        jobId: job.id,
        round,
        attempt,
        selected,
        participants,
        failures,
        metrics,
        startedAt,
        finishedAt,
        ...cohorts,
        ...(privacy ? { privacy } : {}),
      },
      weights: next.weights,
      strategyState: next.state,
      ...(this.deps.sealer
        ? { seal: { sealer: this.deps.sealer, evidence: { sum: revealed.sum, submissions: revealed.submissions } } }
        : {}),
      ...(this.deps.lease ? { fence: this.deps.lease.token } : {}),
    });
    machine.to(ROUND_STATES.completed);
    announceRoundClosed(this.deps.directory, job.id, selected, round, 'completed');
    this.deps.logger.info('round committed', { jobId: job.id, round, participants: participants.length, ...metrics });
    const event: RoundCompletedEvent = {
      job: committed.job,
      round: committed.record,
      weights: next.weights,
      modelHash: committed.modelHash,
      previousWeights: weights,
      ...(parts ? { parts, partKind } : {}),
    };
    return { committed, weights: next.weights, strategyState: next.state, event };
  }

  /** A DP job's revealed sums, noised (central) and charged, with the spent budget stored first; others as they are. */
  private async privatise(revealed: Revealed): Promise<{ revealed: Revealed; privacy?: RoundPrivacyRecord }> {
    const jobPrivacy = this.deps.privacy;
    if (!jobPrivacy) return { revealed };
    const privatised = jobPrivacy.privatise(revealed, this.input.samplingRate);
    await this.deps.store.updateJob(this.input.job.id, { privacy: jobPrivacy.state() });
    return { revealed: privatised.revealed, privacy: privatised.record };
  }
}
