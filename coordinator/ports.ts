/**
 * Interfaces that several coordinator folders share (rounds, jobs, chain, contribution, transport,
 * server composition), kept apart from any implementation so no folder reaches into another's files.
 */
import type { NamedTensor } from '../shared/codec/tensors';
import type { PayoutBinding } from '../shared/schemas/messages';
import type { PartKind, SubmissionDigest } from './aggregation/aggregationMode';
import type { JobRecord, RoundRecord } from './store/store';
import type { AggregatedUpdates, UpdatePart } from './strategy/strategy';

/** What observers of a committed round receive (contracts and contribution scoring plug in here). */
export interface RoundCompletedEvent {
  job: JobRecord;
  round: RoundRecord;
  weights: readonly NamedTensor[];
  modelHash: string;
  /** The global model the round started from (what the updates are deltas of). */
  previousWeights: readonly NamedTensor[];
  /**
   * The parts the round's sum is made of, when the mode sees them: each client's w_i·Δ_i (`client`,
   * plaintext mode) or each SecAgg+ cohort's sum (`cohort`, one cohort of all contributors unless
   * `secagg.cohortSize` is set). Their sums add up to the round's aggregate. Never persisted.
   */
  parts?: UpdatePart[];
  partKind?: PartKind;
}

/** Evaluates a global model on the buyer's validation set; null when there is none. */
export interface GlobalModelEvaluator {
  evaluate(job: JobRecord, weights: readonly NamedTensor[]): Promise<Record<string, number> | null>;
}

/**
 * Observers of a job's life, registered at composition (chain, contribution scoring, the caller's
 * hooks). Each method is optional; an observer's failure never undoes what it observes.
 */
export interface JobObserver {
  /** A job was created (a paid job is `pending` until its escrow is funded). */
  jobCreated?(job: JobRecord): void;
  /** A round was committed (checkpoint, round record, participants and job pointer are stored). */
  roundCommitted?(event: RoundCompletedEvent): void | Promise<void>;
  /** A job's runner returned: the job completed, failed, or the coordinator stopped it (`job.status` says which). */
  jobEnded?(job: JobRecord): void;
  /** Whether this observer needs the parts of a job's round sums (they cost memory; asked every round). */
  wantsParts?(jobId: string): boolean;
}

/** A provider asking to join a job. */
export interface JoinRequest {
  job: JobRecord;
  clientId: string;
  payout?: PayoutBinding;
}

/** What an admission check adds to the participant record (e.g. a verified payout address). */
export interface Admitted {
  payoutAddress?: string;
}

/**
 * A rule a provider must pass to join a job (access policy, payout binding of paid jobs), registered
 * at composition. Throws a coded error to refuse; nothing is recorded for a refused join.
 */
export type AdmissionCheck = (request: JoinRequest) => Promise<Admitted | undefined> | Admitted | undefined;

/** What a round's commit knows beyond its record, for the signed round transcript. */
export interface RoundEvidence {
  /** The revealed sum the strategy stepped from (its digest goes in the transcript, never the sum). */
  sum: AggregatedUpdates;
  /** Digests of the clients' signed submissions, where the mode reports them. */
  submissions?: SubmissionDigest[];
}

/** A committed round as the sealer sees it: the record about to be saved (without its transcript hash). */
export interface RoundSealInput {
  /** The job as the attempt started (its `modelHash` is the model the round started from). */
  job: JobRecord;
  record: Omit<RoundRecord, 'status' | 'transcriptHash' | 'modelHash'> & { modelHash: string };
  evidence: RoundEvidence;
  /** The committing node's fencing token (clustered coordinators): the transcript is saved fenced by it. */
  fence?: number;
}

/**
 * Builds, signs and stores a committed round's transcript (coordinator/transcript/), before the round
 * record is saved; returns the transcript's SHA-256, which the record carries and the chain commits.
 */
export interface RoundSealer {
  sealRound(input: RoundSealInput): Promise<string>;
}
