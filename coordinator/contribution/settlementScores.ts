import type { Store } from '../store/store';
import { contributionReport } from './contributionReport';
import type { ContributionScorer } from './contributionScorer';

/** Label of contribution scores in the payout plan and REST. */
export const CONTRIBUTION_LABEL = 'contribution';

/**
 * The scores on-chain settlement pays at job end: waits until every committed round of the job has
 * been scored, then returns the contribution scores (coordinator/contribution/contributionReport.ts).
 * A job that could not be scored (no validation set) falls back to participation, i.e. committed
 * rounds per client, so its budget is still split among the providers who trained.
 */
export function settlementScores(store: Store, scorer: ContributionScorer) {
  return async (jobId: string): Promise<Array<{ clientId: string; score: number }>> => {
    await scorer.whenIdle(jobId);
    const report = await contributionReport(store, jobId);
    if (report.rounds.length > 0) return report.clients.map((c) => ({ clientId: c.clientId, score: c.score }));
    return (await store.listParticipants(jobId)).filter((p) => p.roundsCompleted > 0).map((p) => ({ clientId: p.clientId, score: p.roundsCompleted }));
  };
}
