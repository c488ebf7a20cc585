import { deriveSeed } from '../../shared/data/random';
import { contributionOptionsOf } from '../../shared/schemas/jobSpec';
import type { Logger } from '../logger';
import type { JobObserver, RoundCompletedEvent } from '../ports';
import type { JobRecord, RoundContribution, RoundRecord, Store } from '../store/store';
import { scoreRound, type RoundPlayer } from './roundScoring';
import { ValidationSets } from '../evaluation/validationSets';
import { ValidationMetrics } from './validationMetric';

export interface ContributionScorerOptions {
  store: Store;
  logger: Logger;
  /** Rounds of one job that may wait for scoring before the round-completed hook holds the runner back. @default 2 */
  maxBacklog?: number;
  /** The coordinator's validation-set cache (shared with the round evaluator). @default a cache of its own */
  validationSets?: ValidationSets;
  /** Told how long each scored round took (metrics). */
  onScoringTime?: (seconds: number) => void;
  /**
   * Called after a round's values are saved (the signed scoring transcript plugs in here); a failure
   * is logged and changes nothing. @default none
   */
  onScored?: (scored: ScoredRound) => Promise<void>;
}

/** A round whose contribution was just saved, with everything needed to recompute its values. */
export interface ScoredRound {
  job: JobRecord;
  /** The committed round record with its `contribution`. */
  round: RoundRecord & { contribution: RoundContribution };
  /**
   * `parts`: the players are the parts of the sum and U(S) is a FedAvg step from S's parts;
   * `round`: the participants as one group, valued at the committed model's improvement.
   */
  basis: 'parts' | 'round';
  /** Every coalition utility the values came from (players by index into `contribution.values`). */
  utilities: Array<{ coalition: number[]; utility: number }>;
  /** GTG-Shapley's permutation seed. */
  seed: number;
}

/**
 * Scores every committed round of every job with a validation set, inside the coordinator, from the
 * round-completed hook: the players are the clients (plaintext `none`, from the aggregator's
 * per-client sums), the secure-aggregation cohorts (`secagg`), or, where only the round's total is
 * known (`paillier`, secagg without cohorts), the participants as one group. The values are saved on
 * the round record (`contribution`, an upsert of the committed record).
 *
 * Scoring runs behind the rounds in a per-job queue: the hook returns at once unless `maxBacklog`
 * rounds already wait, so the next round starts while this one is scored; per-client updates are
 * held in memory only until their round is scored. A failure is logged and leaves the round unscored;
 * it never touches the committed round.
 */
export class ContributionScorer {
  private readonly metrics: ValidationMetrics;
  private readonly queues = new Map<string, { tail: Promise<void>; pending: number }>();
  /** Jobs whose last scored round found no validation set: their plaintext rounds need not keep per-client updates. */
  private readonly withoutValidation = new Set<string>();
  private closed = false;

  constructor(private readonly options: ContributionScorerOptions) {
    this.metrics = new ValidationMetrics(options.validationSets ?? new ValidationSets(options.store));
  }

  /** The round-completed hook. Never rejects. */
  readonly onRoundCompleted = async (event: RoundCompletedEvent): Promise<void> => {
    if (this.closed) return;
    const jobId = event.job.id;
    const queue = this.queues.get(jobId) ?? { tail: Promise.resolve(), pending: 0 };
    this.queues.set(jobId, queue);
    const backlog = queue.pending >= (this.options.maxBacklog ?? 2) ? queue.tail : null;
    queue.pending++;
    queue.tail = queue.tail
      .then(() => this.score(event))
      .finally(() => {
        queue.pending--;
        if (event.round.round >= event.job.spec.rounds) this.forget(jobId);
      });
    // Backpressure only: wait for the older rounds, never for this one.
    if (backlog) await backlog;
  };

  /**
   * The job-ended hook (completed, failed or stopped): once its queued rounds are scored, frees the
   * job's evaluation model and bookkeeping. A job that fails before its last round never reaches the
   * last-round release above, and would otherwise keep its model for the coordinator's lifetime.
   */
  onJobEnded(jobId: string): void {
    const queue = this.queues.get(jobId);
    if (queue) queue.tail = queue.tail.then(() => this.forget(jobId));
    else this.forget(jobId);
  }

  /**
   * Whether plaintext rounds of `jobId` should keep each client's update for scoring: yes unless the
   * job's last round turned out to have no validation set (checked again every round, so a set
   * uploaded later is picked up; that round is then scored as one group).
   */
  wantsClientUpdates(jobId: string): boolean {
    return !this.closed && !this.withoutValidation.has(jobId);
  }

  /** Scoring as a job observer: every committed round is queued; a job's end frees its model. */
  readonly observer: JobObserver = {
    roundCommitted: (event) => this.onRoundCompleted(event),
    jobEnded: (job) => this.onJobEnded(job.id),
    wantsParts: (jobId) => this.wantsClientUpdates(jobId),
  };

  /** Resolves when every round handed over so far (of `jobId`, or of all jobs) has been scored or skipped. */
  async whenIdle(jobId?: string): Promise<void> {
    const queues = jobId ? [this.queues.get(jobId)].filter((q) => q !== undefined) : [...this.queues.values()];
    await Promise.all(queues.map((q) => q.tail));
  }

  /** Stops taking rounds, waits for the queued ones, and frees the evaluation models. */
  async close(): Promise<void> {
    this.closed = true;
    await this.whenIdle();
    this.metrics.dispose();
  }

  /** Frees a job's evaluation model, flags and queue, unless rounds of it still wait (the job was started again). */
  private forget(jobId: string): void {
    if ((this.queues.get(jobId)?.pending ?? 0) > 0) return;
    this.metrics.release(jobId);
    this.withoutValidation.delete(jobId);
    this.queues.delete(jobId);
  }

  private async score(event: RoundCompletedEvent): Promise<void> {
    const { job, round } = event;
    const started = performance.now();
    try {
      const options = contributionOptionsOf(job.spec);
      const metric = await this.metrics.metricFor(job, options.metric);
      if (!metric) {
        this.withoutValidation.add(job.id); // the report says "skipped"
        return;
      }
      this.withoutValidation.delete(job.id);
      const players: RoundPlayer[] = event.parts ?? [];
      const seed = deriveSeed(job.spec.seed, 'contribution', round.round);
      const utilities: ScoredRound['utilities'] = [];
      const contribution =
        players.length > 0
          ? await scoreRound({
              previous: event.previousWeights,
              players,
              metric,
              options,
              seed,
              onUtility: (coalition, utility) => utilities.push({ coalition: [...coalition], utility }),
            })
          : await this.scoreWholeRound(event, metric, options.metric);
      if (players.length === 0)
        utilities.push({ coalition: [], utility: 0 }, { coalition: [0], utility: contribution.improvement });
      // A model that overflowed evaluates to NaN, which would zero every score it is summed into: leave the round unscored.
      if (
        ![contribution.baseline, contribution.improvement, ...contribution.values.map((v) => v.value)].every(
          Number.isFinite,
        )
      ) {
        throw new RangeError('the validation metric is not finite for some coalition');
      }
      await this.options.store.saveRound({ ...round, contribution });
      await this.options
        .onScored?.({
          job,
          round: { ...round, contribution },
          basis: players.length > 0 ? 'parts' : 'round',
          utilities,
          seed,
        })
        .catch((err: unknown) =>
          this.options.logger.error('signing the scoring transcript failed', {
            jobId: job.id,
            round: round.round,
            message: String(err),
          }),
        );
      this.options.logger.debug('round scored', {
        jobId: job.id,
        round: round.round,
        method: contribution.method,
        players: contribution.values.length,
        evaluations: contribution.evaluations,
        ms: Math.round(performance.now() - started),
      });
      this.options.onScoringTime?.((performance.now() - started) / 1000);
    } catch (err) {
      this.options.logger.error('contribution scoring failed', {
        jobId: job.id,
        round: round.round,
        message: String(err),
      });
    }
  }

  /** Only the round's total is known: the participants form one group whose value is the round's improvement. */
  private async scoreWholeRound(
    event: RoundCompletedEvent,
    metric: (w: RoundCompletedEvent['weights']) => Promise<number>,
    name: 'accuracy' | 'loss',
  ) {
    const baseline = await metric(event.previousWeights);
    const improvement = (await metric(event.weights)) - baseline;
    return {
      method: 'exact' as const,
      metric: name,
      baseline,
      improvement,
      evaluations: 2,
      values: [{ members: [...event.round.participants], value: improvement }],
    };
  }
}
