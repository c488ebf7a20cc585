import { getAddress } from 'ethers';
import { buildPayoutPlan } from '../../coordinator/chain/payoutPlan';
import { PARTICIPATION_LABEL } from '../../coordinator/chain/participationScores';
import { buildContributionReport } from '../../coordinator/contribution/contributionReport';
import { CONTRIBUTION_LABEL, paysOnContribution } from '../../coordinator/contribution/settlementScores';
import type { JobRecord, ParticipantRecord, RoundRecord } from '../../coordinator/store/store';
import type { RoundTranscript, ScoringTranscript } from '../../coordinator/transcript/transcriptSchema';
import type { JobSpec } from '../../shared/schemas/jobSpec';
import type { AuditDivergence, AuditedSettlement } from './auditReport';

/** One committed round as the settlement sees it: its transcript, and its scoring when one was verified. */
export interface SettledRound {
  transcript: RoundTranscript;
  /** The verified scoring transcript, with its values as recomputed from its utilities (they replace the signed ones). */
  scoring: { transcript: ScoringTranscript; values: number[] } | null;
}

export interface SettlementInput {
  jobId: string;
  spec: JobSpec;
  rounds: readonly SettledRound[];
  /** The escrow's budget: the pool the coordinator splits (the whole budget, before any refund). */
  poolWei: bigint;
  /** What the coordinator posted with `settle`; null while unsettled. */
  posted: { root: string; total: bigint } | null;
  current: AuditedSettlement['current'];
}

/**
 * Recomputes the payout plan the coordinator must post, by its own rules and code: contribution
 * scores (coordinator/contribution/contributionReport.ts) from every scored round, with the values
 * recomputed from each round's signed utilities, or participation (committed rounds per client)
 * when no round separated clients or the scores pay nobody (settlementScores.ts); each client paid to the payout address its
 * round transcripts name; the pool split and the Merkle tree built by buildPayoutPlan
 * (coordinator/chain/payoutPlan.ts). Then compares root and total with what was posted.
 */
export function checkSettlement(input: SettlementInput): {
  settlement: AuditedSettlement;
  divergences: AuditDivergence[];
} {
  const records: RoundRecord[] = input.rounds.map(({ transcript: t, scoring }) => ({
    jobId: t.jobId,
    round: t.round,
    attempt: t.attempt,
    status: 'completed',
    selected: t.selected,
    participants: t.participants,
    failures: t.failures,
    metrics: {},
    modelHash: t.modelHash,
    startedAt: new Date(t.startedAt),
    finishedAt: new Date(t.finishedAt),
    ...(scoring
      ? {
          contribution: {
            ...scoring.transcript.contribution,
            values: scoring.transcript.contribution.values.map((v, i) => ({
              members: v.members,
              value: scoring.values[i],
            })),
          },
        }
      : {}),
  }));
  // buildContributionReport reads only the job's id and spec.
  const job = { id: input.jobId, spec: input.spec } as JobRecord;
  const report = buildContributionReport(job, records, true);
  let scoreLabel: string;
  let scores: Array<{ clientId: string; score: number }>;
  if (paysOnContribution(report)) {
    scoreLabel = CONTRIBUTION_LABEL;
    scores = report.clients.map((c) => ({ clientId: c.clientId, score: c.score }));
  } else {
    scoreLabel = PARTICIPATION_LABEL;
    const rounds = new Map<string, number>();
    for (const r of input.rounds) for (const id of r.transcript.participants) rounds.set(id, (rounds.get(id) ?? 0) + 1);
    scores = [...rounds].sort(([a], [b]) => (a < b ? -1 : 1)).map(([clientId, score]) => ({ clientId, score }));
  }
  // The latest address each client's round transcripts name (an address bound at join is kept).
  const addresses = new Map<string, string>();
  // Checksummed as the join check stores them (buildPayoutPlan keys accounts by the checksummed form).
  for (const r of input.rounds)
    for (const p of r.transcript.payoutAddresses) addresses.set(p.clientId, getAddress(p.address.toLowerCase()));
  const participants: ParticipantRecord[] = [...addresses].map(([clientId, payoutAddress]) => ({
    jobId: input.jobId,
    clientId,
    payoutAddress,
    joinedAt: new Date(0),
    lastSeenAt: new Date(0),
    roundsCompleted: 0,
  }));
  const plan = buildPayoutPlan(input.jobId, input.poolWei, scores, participants, scoreLabel);
  const settlement: AuditedSettlement = {
    scoreLabel,
    scores,
    poolWei: plan.poolWei,
    root: plan.root.toLowerCase(),
    totalWei: plan.totalWei,
    allocations: plan.allocations.map((a) => ({
      account: a.account,
      amountWei: a.amountWei,
      proof: a.proof,
      clientIds: a.clientIds,
      score: a.score,
    })),
    posted: input.posted ? { root: input.posted.root, totalWei: input.posted.total.toString() } : null,
    current: input.current,
  };
  const divergences: AuditDivergence[] = [];
  if (input.posted && input.posted.root.toLowerCase() !== settlement.root) {
    const paid = settlement.allocations.map((a) => `${a.account} ${a.amountWei}`).join(', ') || 'nobody';
    divergences.push({
      check: 'settlement-root',
      claimed: `root ${input.posted.root}, total ${input.posted.total}`,
      found: `root ${settlement.root}, total ${settlement.totalWei} (${scoreLabel} scores: ${paid})`,
      message: `The posted payout root is not the one the committed rounds and their scores give: dispute it during the challenge window; the arbiter can post root ${settlement.root} with total ${settlement.totalWei}.`,
    });
  } else if (input.posted && input.posted.total.toString() !== settlement.totalWei) {
    divergences.push({
      check: 'settlement-total',
      claimed: `total ${input.posted.total}`,
      found: `total ${settlement.totalWei}`,
      message: 'The posted payout total is not the sum of the recomputed allocations.',
    });
  }
  return { settlement, divergences };
}
