import { createHash } from 'node:crypto';
import { canonicalSpecHash } from '../../contracts/escrowBinding';
import type { ScoredRound } from '../contribution/contributionScorer';
import type { RoundSealInput } from '../ports';
import type { ParticipantRecord, RoundFailure, RoundRecord } from '../store/store';
import { aggregateDigest } from './aggregateDigest';
import {
  MAX_REASON_LENGTH,
  ROUND_TRANSCRIPT_TYPE,
  type RoundTranscript,
  SCORING_TRANSCRIPT_TYPE,
  type ScoringTranscript,
} from './transcriptSchema';

/** What a round transcript is built from beyond the commit: the store's view of the round. */
export interface RoundTranscriptContext {
  coordinatorKey: string;
  /** Every record of the job's rounds so far (the round's earlier failed attempts are taken from them). */
  rounds: readonly RoundRecord[];
  participants: readonly ParticipantRecord[];
  /** The job's validation set (dataset codec bytes) the round was evaluated on, or null. */
  validationSet: Uint8Array | null;
}

const byClientId = (a: { clientId: string }, b: { clientId: string }) =>
  a.clientId < b.clientId ? -1 : a.clientId > b.clientId ? 1 : 0;

const cut = (reason: string) => (reason.length > MAX_REASON_LENGTH ? reason.slice(0, MAX_REASON_LENGTH) : reason);
const failuresOf = (failures: readonly RoundFailure[]) =>
  failures.map((f) => ({ clientId: f.clientId, reason: cut(f.reason) }));

/** The round transcript of a committed round (see transcriptSchema.ts for what each field says). */
export function buildRoundTranscript(input: RoundSealInput, context: RoundTranscriptContext): RoundTranscript {
  const { job, record, evidence } = input;
  const participants = new Set(record.participants);
  const metrics: Record<string, number | null> = {};
  for (const [name, value] of Object.entries(record.metrics)) metrics[name] = Number.isFinite(value) ? value : null;
  return {
    type: ROUND_TRANSCRIPT_TYPE,
    coordinatorKey: context.coordinatorKey,
    jobId: job.id,
    specHash: canonicalSpecHash(job.spec).toLowerCase(),
    round: record.round,
    attempt: record.attempt,
    startedAt: record.startedAt.toISOString(),
    finishedAt: record.finishedAt.toISOString(),
    selected: [...record.selected],
    participants: [...record.participants],
    failures: failuresOf(record.failures),
    failedAttempts: context.rounds
      .filter((r) => r.round === record.round && r.status === 'failed' && r.attempt < record.attempt)
      .sort((a, b) => a.attempt - b.attempt)
      .map((r) => ({
        attempt: r.attempt,
        reason: cut(r.failureReason ?? ''),
        selected: [...r.selected],
        participants: [...r.participants],
        failures: failuresOf(r.failures),
      })),
    cohorts: record.cohorts ? record.cohorts.map((c) => [...c]) : null,
    previousModelHash: job.modelHash,
    modelHash: record.modelHash,
    aggregate: {
      digest: aggregateDigest(evidence.sum),
      totalWeight: evidence.sum.totalWeight,
      clientCount: evidence.sum.clientCount,
    },
    metrics,
    submissions: evidence.submissions
      ? evidence.submissions.map((s) => ({ clientId: s.clientId, digest: s.digest })).sort(byClientId)
      : null,
    payoutAddresses: context.participants
      .filter((p) => p.payoutAddress && participants.has(p.clientId))
      .map((p) => ({ clientId: p.clientId, address: p.payoutAddress! }))
      .sort(byClientId),
    validationSet: context.validationSet ? createHash('sha256').update(context.validationSet).digest('hex') : null,
  };
}

/**
 * The scoring transcript of a scored round, or null when the round has no round transcript to refer
 * to (it was committed without a sealer). Utilities are listed by coalition size, then lexicographically.
 */
export function buildScoringTranscript(scored: ScoredRound, coordinatorKey: string): ScoringTranscript | null {
  const { job, round } = scored;
  if (!round.transcriptHash) return null;
  const c = round.contribution;
  const utilities = scored.utilities
    .map((u) => ({ coalition: [...u.coalition].sort((a, b) => a - b), utility: u.utility }))
    .sort((a, b) => a.coalition.length - b.coalition.length || compareLists(a.coalition, b.coalition));
  return {
    type: SCORING_TRANSCRIPT_TYPE,
    coordinatorKey,
    jobId: job.id,
    round: round.round,
    attempt: round.attempt,
    roundTranscriptHash: round.transcriptHash,
    basis: scored.basis,
    seed: scored.seed,
    contribution: {
      method: c.method,
      metric: c.metric,
      baseline: c.baseline,
      improvement: c.improvement,
      evaluations: c.evaluations,
      values: c.values.map((v) => ({ members: [...v.members], value: v.value })),
    },
    utilities,
  };
}

function compareLists(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}
