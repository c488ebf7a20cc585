import type { Store } from '../store/store';

/** A contributor's score for payouts; only ratios matter. */
export interface ClientScore {
  clientId: string;
  score: number;
}

/** A finished job's contributor scores, and what they measure (shown in REST and the payout plan). */
export interface JobScores {
  label: string;
  scores: ClientScore[];
}

/** Scores a finished job's contributors; the coordinator splits the escrow in proportion. */
export type ScoresFor = (jobId: string) => Promise<JobScores>;

/** Label of the default scores in REST and in the payout plan. */
export const PARTICIPATION_LABEL = 'participation';

/**
 * Participation: the number of committed rounds each client contributed an accepted update to. What
 * a job is paid on when it could not be scored by contribution (no validation set, no cohorts).
 */
export function participationScores(store: Store): ScoresFor {
  return async (jobId) => ({
    label: PARTICIPATION_LABEL,
    scores: (await store.listParticipants(jobId))
      .filter((p) => p.roundsCompleted > 0)
      .map((p) => ({ clientId: p.clientId, score: p.roundsCompleted })),
  });
}
