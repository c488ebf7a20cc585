import { TributaryError } from '../errors';
import type { SecAggSessionRef } from './roundId';
import { secaggError } from './stages';

/** How far a client's input got in one session: set up, masked (sent), or shown the survivor set to unmask. */
export type SessionProgress = 'open' | 'masked' | 'unmasking';

interface SessionRecord {
  roundId: string;
  attempt: number;
  progress: SessionProgress;
}

export interface UnmaskedRoundsOptions {
  /**
   * When an earlier attempt of a round stops the client from masking its input again:
   * 'unmasking' once that attempt showed the client its survivor set (the consistency check, after
   * which the coordinator unmasks; its neighbours reveal its self-mask shares only with its signature
   * over that set, so no session it did not sign can unmask its input); 'masked' as soon as the client
   * sent a masked input in it (stricter than privacy needs: it excludes those clients from every retry).
   * @default 'unmasking'
   */
  refuseAfter?: 'unmasking' | 'masked';
}

/**
 * One masked input per (job, round): the record a client keeps for one job, across all its SecAgg+
 * sessions (pass the same object to every SecAggPlusClient of the job). A retried attempt trains the
 * same model with the same seed, so its input is (nearly) the same; two unmasked sums containing it
 * are two linear equations that separate it from its co-members (issue 12). The guard refuses
 * - a second session with the same round id (old signatures would count again), a second session in
 *   the same attempt (two cohorts at once), and any message of an attempt older than the newest one
 *   set up for the round (attempts only move forward);
 * - masking in a session when another session of the round reached `refuseAfter`.
 * Retries stay possible for attempts that failed before unmasking (quorum at collection).
 */
export class UnmaskedRounds {
  readonly jobId: string;
  readonly refuseAfter: 'unmasking' | 'masked';
  private readonly rounds = new Map<number, SessionRecord[]>();

  constructor(jobId: string, options: UnmaskedRoundsOptions = {}) {
    this.jobId = jobId;
    this.refuseAfter = options.refuseAfter ?? 'unmasking';
    if (this.refuseAfter !== 'unmasking' && this.refuseAfter !== 'masked') {
      throw new TributaryError(
        'CONFIG_INVALID',
        `refuseAfter must be 'unmasking' or 'masked', got ${this.refuseAfter}`,
      );
    }
  }

  /** Registers a session at setup; throws SECAGG_MESSAGE_INVALID for a repeated, stale or concurrent one. */
  open(ref: SecAggSessionRef, roundId: string): void {
    if (ref.jobId !== this.jobId) {
      throw secaggError('SECAGG_MESSAGE_INVALID', `SecAgg+ client: expected job ${this.jobId}, got ${ref.jobId}`);
    }
    const sessions = this.rounds.get(ref.round) ?? [];
    const clash = (why: string): never => {
      throw secaggError('SECAGG_MESSAGE_INVALID', `SecAgg+ client: refusing session ${roundId}: ${why}`, { roundId });
    };
    if (sessions.some((s) => s.roundId === roundId)) clash('it was already set up (a round id names one session)');
    const newest = Math.max(-1, ...sessions.map((s) => s.attempt));
    if (newest > ref.attempt) clash(`attempt ${newest} of round ${ref.round} already started`);
    if (newest === ref.attempt) clash(`this client is already in another session of attempt ${ref.attempt}`);
    sessions.push({ roundId, attempt: ref.attempt, progress: 'open' });
    this.rounds.set(ref.round, sessions);
  }

  /** Throws unless `roundId` is the newest session set up for its round. */
  assertCurrent(ref: SecAggSessionRef, roundId: string): void {
    this.current(ref, roundId);
  }

  /** Before masking: throws SECAGG_INPUT_ALREADY_UNMASKED when another session of the round reached `refuseAfter`. */
  beforeMasking(ref: SecAggSessionRef, roundId: string): void {
    const record = this.current(ref, roundId);
    const earlier = (this.rounds.get(ref.round) ?? []).find(
      (s) => s !== record && (this.refuseAfter === 'masked' ? s.progress !== 'open' : s.progress === 'unmasking'),
    );
    if (earlier) {
      throw secaggError(
        'SECAGG_INPUT_ALREADY_UNMASKED',
        `SecAgg+ client: refusing to mask round ${ref.round} again: its input in session ${earlier.roundId} ` +
          `${earlier.progress === 'unmasking' ? 'reached unmasking' : 'was sent (and may have been unmasked)'}`,
        { roundId, earlier: earlier.roundId },
      );
    }
    record.progress = 'masked';
  }

  /** At the consistency check (the coordinator goes on to unmask): records it. */
  beforeUnmasking(ref: SecAggSessionRef, roundId: string): void {
    const record = this.current(ref, roundId);
    if (record.progress !== 'masked') {
      throw secaggError('SECAGG_MESSAGE_INVALID', `SecAgg+ client: session ${roundId} has no masked input to unmask`);
    }
    record.progress = 'unmasking';
  }

  /** The sessions of a round, oldest first (for inspection and tests). */
  sessionsOf(round: number): ReadonlyArray<Readonly<SessionRecord>> {
    return (this.rounds.get(round) ?? []).map((s) => ({ ...s }));
  }

  private current(ref: SecAggSessionRef, roundId: string): SessionRecord {
    const sessions = this.rounds.get(ref.round) ?? [];
    const record = sessions.find((s) => s.roundId === roundId);
    if (!record) throw secaggError('SECAGG_MESSAGE_INVALID', `SecAgg+ client: session ${roundId} was never set up`);
    const newest = Math.max(...sessions.map((s) => s.attempt));
    if (newest > record.attempt) {
      throw secaggError(
        'SECAGG_MESSAGE_INVALID',
        `SecAgg+ client: session ${roundId} is over: attempt ${newest} of round ${ref.round} started`,
        { roundId },
      );
    }
    return record;
  }
}
