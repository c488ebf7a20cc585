import { SCORE_SCALE } from '../../contracts/payouts';
import { participationScores, type ScoresFor } from '../chain/participationScores';
import type { Store } from '../store/store';
import { contributionReport, type ContributionReport } from './contributionReport';
import type { ContributionScorer } from './contributionScorer';

/** Label of contribution scores in the payout plan and REST. */
export const CONTRIBUTION_LABEL = 'contribution';

/**
 * The scores on-chain settlement pays at job end (the coordinator's default): waits until every
 * committed round of the job has been scored, then returns the contribution scores
 * (coordinator/contribution/contributionReport.ts). A job that could not be scored (no validation
 * set, or a private mode without cohorts) falls back to participation, i.e. committed rounds per
 * client, labelled so, so its budget is still split among the providers who trained. So does a job
 * whose contribution scores pay nobody (paysOnContribution).
 */
export function settlementScores(store: Store, scorer: ContributionScorer): ScoresFor {
  const participation = participationScores(store);
  return async (jobId) => {
    await scorer.whenIdle(jobId);
    const report = await contributionReport(store, jobId);
    if (paysOnContribution(report)) {
      return {
        label: CONTRIBUTION_LABEL,
        scores: report.clients.map((c) => ({ clientId: c.clientId, score: c.score })),
      };
    }
    return participation(jobId);
  };
}

/**
 * Whether some scored round measured clients apart (per client, or several cohorts). A round scored as
 * one group of all its participants (paillier, secagg without cohorts) only says how much the round
 * helped; its "scores" pay nobody when the rounds made the model worse, so such a job is paid on participation.
 */
export function separatesClients(report: ContributionReport): boolean {
  return report.rounds.some((r) => r.values.length > 1 || r.values.some((v) => v.members.length === 1));
}

/**
 * Whether a job is paid on its contribution scores: some round measured clients apart and some client's
 * score is large enough to be paid (computePayouts weighs scores in units of 1 / SCORE_SCALE). Scores
 * that pay nobody would send the whole pool back to the buyer, who chose the validation set they were
 * measured on (a set with flipped labels makes every honest round look harmful): such a job is paid on
 * participation instead.
 */
export function paysOnContribution(report: ContributionReport): boolean {
  return separatesClients(report) && report.clients.some((c) => Number.isFinite(c.score) && c.score * SCORE_SCALE >= 1);
}
