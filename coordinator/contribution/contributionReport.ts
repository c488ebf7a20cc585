import { TributaryError } from '../../shared/errors';
import { contributionOptionsOf } from '../../shared/schemas/jobSpec';
import type { JobRecord, RoundContribution, RoundRecord, Store } from '../store/store';
import { membershipLeastSquares } from './membershipLeastSquares';

/** One client's accumulated score and its share of the payout. */
export interface ClientContribution {
  clientId: string;
  /**
   * Plaintext: Σ of its per-round Shapley values. Private: the lower end of the estimate's confidence
   * interval (`contribution.lowerBoundSigmas` standard errors below it; see privateScores), so only a
   * measurably positive contribution is paid.
   */
  score: number;
  /** Private only: the least-squares estimate of the client's total (perRound × rounds) and the standard error of perRound. */
  estimate?: number;
  standardError?: number;
  /** Fraction of the paid budget: score / Σ positive scores, 0 for a score <= 0. */
  share: number;
  /** Scored rounds the client took part in. */
  rounds: number;
}

/** What GET /v1/jobs/:id/contributions returns: how every score was computed. */
export interface ContributionReport {
  jobId: string;
  /** `skipped`: the job has no validation set, so nothing can be measured. */
  status: 'scored' | 'skipped';
  reason?: string;
  /** plaintext: per-client Shapley values; private: per-cohort Shapley values, then least squares on membership. */
  method: 'shapley' | 'cohort-shapley-least-squares';
  metric: 'accuracy' | 'loss';
  /** Committed rounds without scoring (no validation set yet, scored before a restart, or still in the queue). */
  unscoredRounds: number[];
  rounds: Array<{ round: number; attempt: number } & RoundContribution>;
  clients: ClientContribution[];
}

/**
 * Private modes pay on estimate - 2 standard errors by default (the lower end of an approximate 95 %
 * confidence interval; `contribution.lowerBoundSigmas`): a client whose value cannot yet be told apart
 * from zero earns nothing until more rounds separate it. On the planted federation this is what keeps
 * free-riders at 0 after 10-20 rounds.
 */
export const PRIVATE_SCORE_Z = 2;

/** A client's private-mode score: see privateScores. */
export interface PrivateScore {
  clientId: string;
  score: number;
  estimate: number;
  standardError: number;
  rounds: number;
}

/**
 * Individual scores from cohort values alone. Each round's improvement U_r is first split equally
 * among its participants (the participation baseline); least squares on membership then estimates each
 * client's per-round deviation d_i from that equal split, from the cohort values minus their members'
 * baseline (so the round-to-round swings of U_r, shared by everyone, do not count as noise). The
 * estimate is baseline_i + d_i × rounds_i; the score paid is its lower confidence bound,
 * baseline_i + (d_i - sigmas × SE(d_i)) × rounds_i.
 */
export function privateScores(rounds: readonly RoundContribution[], sigmas = PRIVATE_SCORE_Z): PrivateScore[] {
  const baseline = new Map<string, number>();
  const centred = rounds.flatMap((r) => {
    const players = r.values.reduce((n, v) => n + v.members.length, 0);
    const total = r.values.reduce((s, v) => s + v.value, 0);
    const each = players > 0 ? total / players : 0;
    for (const v of r.values) for (const m of v.members) baseline.set(m, (baseline.get(m) ?? 0) + each);
    return r.values.map((v) => ({ members: v.members, value: v.value - each * v.members.length }));
  });
  return membershipLeastSquares(centred).map((e) => {
    const base = baseline.get(e.clientId) ?? 0;
    return {
      clientId: e.clientId,
      score: base + (e.perRound - sigmas * e.standardError) * e.rounds,
      estimate: base + e.total,
      standardError: e.standardError,
      rounds: e.rounds,
    };
  });
}

/** Payout shares: proportional to positive scores; scores <= 0 get nothing. */
export function payoutShares(scores: readonly number[]): number[] {
  // biome-ignore lint/complexity/useMathMinMax: a NaN score must count as 0; Math.max would keep the NaN.
  const positive = scores.reduce((s, x) => s + (x > 0 ? x : 0), 0);
  return scores.map((x) => (x > 0 && positive > 0 ? x / positive : 0));
}

/** Accumulates the persisted per-round values of a job into per-client scores and shares. */
export function buildContributionReport(
  job: JobRecord,
  rounds: readonly RoundRecord[],
  hasValidationSet: boolean,
): ContributionReport {
  const committed = rounds.filter((r) => r.status === 'completed');
  const scored = committed.filter((r) => r.contribution);
  // Rounds scored per client (plaintext parts) add up directly; cohort values need the estimator.
  const plaintext = scored.every((r) => r.contribution!.values.every((v) => v.members.length === 1));
  const totals = new Map<string, { score: number; rounds: number; estimate?: number; standardError?: number }>();
  if (plaintext) {
    for (const r of scored) {
      for (const v of r.contribution!.values) {
        for (const clientId of v.members) {
          const t = totals.get(clientId) ?? { score: 0, rounds: 0 };
          t.score += v.value / v.members.length;
          t.rounds++;
          totals.set(clientId, t);
        }
      }
    }
  } else {
    const sigmas = contributionOptionsOf(job.spec).lowerBoundSigmas;
    for (const e of privateScores(
      scored.map((r) => r.contribution!),
      sigmas,
    ))
      totals.set(e.clientId, e);
  }
  const ids = [...totals.keys()].sort();
  const shares = payoutShares(ids.map((id) => totals.get(id)!.score));
  const clients = ids
    .map((clientId, i) => ({ clientId, ...totals.get(clientId)!, share: shares[i] }))
    .sort((a, b) => b.score - a.score || a.clientId.localeCompare(b.clientId));
  return {
    jobId: job.id,
    status: hasValidationSet || scored.length > 0 ? 'scored' : 'skipped',
    ...(hasValidationSet || scored.length > 0
      ? {}
      : {
          reason: 'The job has no validation set: upload one (PUT /v1/jobs/:id/validation-set) to score contributions.',
        }),
    method: plaintext ? 'shapley' : 'cohort-shapley-least-squares',
    metric: contributionOptionsOf(job.spec).metric,
    unscoredRounds: committed.filter((r) => !r.contribution).map((r) => r.round),
    rounds: scored.map((r) => ({ round: r.round, attempt: r.attempt, ...r.contribution! })),
    clients,
  };
}

/** The contribution report of a job from the store. Throws JOB_NOT_FOUND. */
export async function contributionReport(store: Store, jobId: string): Promise<ContributionReport> {
  const job = await store.getJob(jobId);
  if (!job) throw new TributaryError('JOB_NOT_FOUND', `No job with id "${jobId}".`);
  const [rounds, validation] = await Promise.all([store.listRounds(jobId), store.loadValidationSet(jobId)]);
  return buildContributionReport(job, rounds, validation !== null);
}
