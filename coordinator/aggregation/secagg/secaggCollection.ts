import { TributaryError, toTributaryError } from '../../../shared/errors';
import type { SecAggOptions } from '../../../shared/schemas/jobSpec';
import type { RoundFailure } from '../../store/store';
import type { UpdatePart } from '../../strategy/strategy';
import type { Collected, CollectionContext, Revealed, RoundCollection, RoundMessage } from '../aggregationMode';
import { sumUpdates } from '../../strategy/sumUpdates';
import { splitCohorts } from './secaggCohorts';
import { secaggEncodingOf } from './secaggEncoding';
import { SecAggSession } from './secaggSession';

type Settled<T> = { ok: true; value: T } | { ok: false; error: TributaryError };
const settle = <T>(p: Promise<T>): Promise<Settled<T>> =>
  p.then(
    (value) => ({ ok: true as const, value }),
    (err: unknown) => ({ ok: false as const, error: toTributaryError(err) }),
  );

/**
 * One `secagg` round attempt: one SecAggSession per cohort (the whole selection is one cohort unless
 * `secagg.cohortSize` is set), all run to the end of collection before any of them unmasks, so the
 * runner can check the round's quorum first and a failed attempt reveals no cohort sum. A cohort that
 * aborts is dropped (its members become failures) while the others' sums still count. No per-client
 * metrics are collected (they would leak).
 */
export class SecAggCollection implements RoundCollection {
  private readonly cohorts: string[][];
  private sessions: SecAggSession[] = [];
  private readonly sessionOf = new Map<string, SecAggSession>();
  /** Sessions whose collection ended, with the members they still count (cohort index kept). */
  private live: Array<{ index: number; session: SecAggSession }> = [];
  private readonly failures: RoundFailure[] = [];
  private readonly aborted: string[] = [];
  private firstError: TributaryError | null = null;

  constructor(
    private readonly context: CollectionContext,
    private readonly options: SecAggOptions,
  ) {
    const { job, round, attempt, selected } = context;
    this.cohorts = splitCohorts(selected, options.cohortSize, { seed: job.spec.seed, round, attempt });
  }

  async collect(): Promise<Collected> {
    const { job, round, attempt, deadline, directory } = this.context;
    const cohortSize = this.options.cohortSize;
    try {
      // One encoding for every cohort: the same vector length, C and (distributed DP) noise plan.
      const encoding = secaggEncodingOf(job.weightManifest, this.options, this.context.privacy);
      this.sessions = this.cohorts.map(
        (members, i) =>
          new SecAggSession({
            jobId: job.id,
            round,
            attempt,
            selected: members,
            manifest: job.weightManifest,
            options: this.options,
            encoding,
            // A cohort's sum must cover at least cohortSize clients; one whole-round cohort needs minClients.
            minClients: cohortSize === undefined ? job.spec.minClients : Math.min(cohortSize, members.length),
            trainingDeadline: deadline,
            directory,
            now: () => this.context.now(),
            ...(cohortSize === undefined ? {} : { cohort: i }),
          }),
      );
    } catch (err) {
      const e = toTributaryError(err);
      return { failed: `${e.code}: ${e.message}`, participants: [], failures: [] };
    }
    this.cohorts.forEach((members, i) => {
      for (const clientId of members) this.sessionOf.set(clientId, this.sessions[i]);
    });
    const outcomes = await Promise.all(this.sessions.map((s) => settle(s.collect())));
    const participants: string[] = [];
    outcomes.forEach((o, i) => {
      if (o.ok) {
        this.live.push({ index: i, session: this.sessions[i] });
        participants.push(...o.value);
      } else this.abortCohort(i, o.error);
    });
    const failures = [...this.failures, ...this.live.flatMap(({ session }) => session.failures)];
    if (this.live.length === 0) return { failed: this.failureReason(), participants: [], failures };
    return { participants, failures: failures.filter((f) => !participants.includes(f.clientId)), evaluations: [] };
  }

  async reveal(): Promise<Revealed> {
    // Survivors that left since their cohort's collection ended are withdrawn, and the round's
    // quorum checked again, before any cohort is sent its consistency check: failing here reveals nothing.
    let covered = 0;
    for (const { index, session } of [...this.live]) {
      try {
        covered += session.prepareReveal().length;
      } catch (err) {
        this.abortCohort(index, toTributaryError(err));
      }
    }
    const { minClients } = this.context.job.spec;
    if (covered < minClients) {
      this.stop();
      throw new TributaryError(
        'ROUND_QUORUM_NOT_MET',
        `${covered} of the ${minClients} required clients are still connected to unmask their sums; nothing was revealed`,
      );
    }
    const live = this.live;
    const outcomes = await Promise.all(live.map(({ session }) => settle(session.unmask())));
    const parts: UpdatePart[] = [];
    const participants: string[] = [];
    const failures: RoundFailure[] = [];
    // DP rounds: each cohort's sum carries its count of unclipped updates (noised, with distributed noise).
    let unclippedCount = 0;
    let noised = false;
    outcomes.forEach((o, k) => {
      if (o.ok) {
        unclippedCount += o.value.privacy?.unclippedCount ?? 0;
        noised = o.value.privacy?.noised ?? false;
        parts.push({ members: [...o.value.participants], updates: o.value.updates });
        participants.push(...o.value.participants);
        failures.push(...o.value.failures);
      } else this.abortCohort(live[k].index, o.error);
    });
    if (parts.length === 0)
      throw this.firstError ?? new TributaryError('ROUND_QUORUM_NOT_MET', 'No SecAgg+ cohort unmasked.');
    return {
      sum: sumUpdates(parts.map((p) => p.updates)),
      participants,
      failures: [...this.failures, ...failures],
      parts,
      partKind: 'cohort',
      ...(this.context.privacy ? { privacy: { unclippedCount, noised } } : {}),
    };
  }

  receive(clientId: string, message: RoundMessage): void {
    if (message.name !== 'secaggReply') {
      throw new TributaryError(
        'VALIDATION_FAILED',
        `Job ${this.context.job.id} aggregates with SecAgg+; updates travel as secagg:reply messages, not ${message.name}.`,
      );
    }
    // Each client belongs to exactly one cohort: its reply goes to that cohort's session.
    const session = this.sessionOf.get(clientId);
    if (!session) {
      throw new TributaryError(
        'ROUND_NOT_SELECTED',
        `The client is not in round ${this.context.round}'s secure aggregation.`,
      );
    }
    session.receive(clientId, message.body, message.data);
  }

  dropped(clientId: string, reason: string): void {
    this.sessionOf.get(clientId)?.markDropped(clientId, reason);
  }

  stop(): void {
    for (const session of this.sessions) session.stop();
  }

  /** A cohort aborted: members that dropped keep their own reason; the rest lose their input with it. */
  private abortCohort(index: number, error: TributaryError): void {
    this.firstError ??= error;
    const whole = this.options.cohortSize === undefined;
    const reason = `${error.code}: ${error.message}`;
    this.aborted.push(whole ? reason : `cohort ${index}: ${reason}`);
    const own = this.sessions[index].failures;
    this.failures.push(...own);
    if (whole) return;
    const failed = new Set(own.map((f) => f.clientId));
    for (const clientId of this.cohorts[index]) {
      if (!failed.has(clientId)) {
        this.failures.push({ clientId, reason: `SECAGG_COHORT_ABORTED (cohort ${index}): ${reason}` });
      }
    }
    this.live = this.live.filter((l) => l.index !== index);
  }

  private failureReason(): string {
    const first = this.firstError!;
    return this.options.cohortSize === undefined || this.sessions.length === 1
      ? `${first.code}: ${first.message}`
      : `${first.code}: all ${this.sessions.length} SecAgg+ cohorts aborted (${this.aborted.join('; ')})`;
  }
}
