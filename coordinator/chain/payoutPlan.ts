import { computePayouts } from '../../contracts/payouts';
import type { ParticipantRecord, PayoutPlanRecord } from '../store/store';
import type { ClientScore } from './participationScores';

/**
 * Turns client scores into the payout plan of a chain job: each client's score goes to its bound
 * payout address (clients sharing an address add up; clients without one, or with a score of 0,
 * get nothing), the pool is split in proportion (contracts/payouts.ts: floor, dust to the buyer),
 * and the Merkle proofs are kept so the coordinator can publish them.
 */
export function buildPayoutPlan(
  jobId: string,
  pool: bigint,
  scores: readonly ClientScore[],
  participants: readonly ParticipantRecord[],
  scoreLabel: string,
  now = new Date(),
): PayoutPlanRecord {
  const addressOf = new Map(participants.filter((p) => p.payoutAddress).map((p) => [p.clientId, p.payoutAddress!]));
  const byAccount = new Map<string, { score: number; clientIds: string[] }>();
  for (const s of scores) {
    const account = addressOf.get(s.clientId);
    if (!account || !Number.isFinite(s.score) || s.score <= 0) continue;
    const entry = byAccount.get(account) ?? { score: 0, clientIds: [] };
    entry.score += s.score;
    entry.clientIds.push(s.clientId);
    byAccount.set(account, entry);
  }
  // A fixed order (by address) so the same scores always give the same tree.
  const accounts = [...byAccount.keys()].sort();
  const plan = computePayouts(
    pool,
    accounts.map((account) => ({ account, score: byAccount.get(account)!.score })),
  );
  return {
    jobId,
    root: plan.root,
    totalWei: plan.total.toString(),
    poolWei: pool.toString(),
    dustWei: plan.dust.toString(),
    scoreLabel,
    allocations: plan.allocations.map((a) => {
      const entry = byAccount.get(a.account)!;
      return {
        account: a.account,
        amountWei: a.amount.toString(),
        proof: a.proof,
        clientIds: entry.clientIds,
        score: entry.score,
      };
    }),
    createdAt: now,
  };
}
