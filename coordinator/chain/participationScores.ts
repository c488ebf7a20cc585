import type { Store } from '../store/store';

/** A contributor's score for payouts; only ratios matter. */
export interface ClientScore {
  clientId: string;
  score: number;
}

/** Scores a finished job's contributors; the coordinator splits the escrow in proportion. */
export type ScoresFor = (jobId: string) => Promise<ClientScore[]>;

/** Label of the default scores in REST and in the payout plan. */
export const PARTICIPATION_LABEL = 'participation';

/**
 * The default scores until contribution scoring is plugged in: participation, i.e. the number of
 * committed rounds each client contributed an accepted update to.
 */
export function participationScores(store: Store): ScoresFor {
  return async (jobId) =>
    (await store.listParticipants(jobId)).filter((p) => p.roundsCompleted > 0).map((p) => ({ clientId: p.clientId, score: p.roundsCompleted }));
}
