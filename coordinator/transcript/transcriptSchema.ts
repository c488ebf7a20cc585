/**
 * The coordinator's signed transcripts, as zod schemas (the audit parses what the coordinator serves
 * with these; the coordinator builds exactly these shapes). Two kinds, each tagged by its `type`, which
 * is inside the signed bytes and so doubles as the signature's domain tag:
 *
 * - a **round transcript** per committed round: who was selected, who contributed, who failed and why
 *   (this attempt and the round's earlier failed attempts), cohort membership, the previous and new
 *   model hashes, the digest of the revealed sum, the metrics, the digest of each client's signed
 *   submission where the mode has them, the participants' payout addresses and the digest of the
 *   validation set the round was evaluated on. Its SHA-256 is `RoundRecord.transcriptHash`, committed
 *   on chain with the round;
 * - a **scoring transcript** per scored round, signed once contribution scoring has run (it runs
 *   behind the rounds, after the commit): the round transcript's hash, the Shapley values, and every
 *   coalition utility they were computed from, so anyone can recompute the values.
 *
 * Sizes are bounded (clients per round, utilities per round, string lengths) before anything else is
 * done with a transcript.
 */
import { z } from 'zod';
import { LIMITS } from '../../shared/schemas/jobSpec';
import { JobIdSchema } from '../../shared/schemas/messages';

export const ROUND_TRANSCRIPT_TYPE = 'tributary/round-transcript/v1';
export const SCORING_TRANSCRIPT_TYPE = 'tributary/scoring-transcript/v1';

/** At most this many coalition utilities in one scoring transcript (contribution.maxEvaluations is at most 100,000). */
export const MAX_TRANSCRIPT_UTILITIES = 100_001;
/** Failure reasons are cut to this many characters in a transcript. */
export const MAX_REASON_LENGTH = 1000;

const Sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, 'expected a SHA-256 digest as 64 lowercase hex digits');
const Bytes32Hex = z.string().regex(/^0x[0-9a-f]{64}$/, 'expected 32 bytes as 0x-prefixed lowercase hex');
const Ed25519KeyHex = z.string().regex(/^[0-9a-f]{64}$/, 'expected an Ed25519 public key as 64 lowercase hex digits');
const ClientIdSchema = z.string().min(1).max(128);
const ClientListSchema = z.array(ClientIdSchema).max(LIMITS.maxClientsPerRound);
const RoundNumberSchema = z.number().int().min(1).max(LIMITS.maxRounds);
const AttemptSchema = z.number().int().min(0).max(1000);
const IsoTimeSchema = z.string().max(40);

const FailureSchema = z.object({ clientId: ClientIdSchema, reason: z.string().max(MAX_REASON_LENGTH) }).strict();
const FailureListSchema = z.array(FailureSchema).max(2 * LIMITS.maxClientsPerRound);

/** A failed attempt of the round before the one that committed. */
const FailedAttemptSchema = z
  .object({
    attempt: AttemptSchema,
    reason: z.string().max(MAX_REASON_LENGTH),
    selected: ClientListSchema,
    participants: ClientListSchema,
    failures: FailureListSchema,
  })
  .strict();

/** The digest of one client's signed submission (its upload's hash, its masked input's, its ciphertexts'). */
export const SubmissionDigestSchema = z.object({ clientId: ClientIdSchema, digest: Sha256Hex }).strict();

export const RoundTranscriptSchema = z
  .object({
    type: z.literal(ROUND_TRANSCRIPT_TYPE),
    /** The coordinator's Ed25519 transcript key (hex); the signature verifies under it. */
    coordinatorKey: Ed25519KeyHex,
    jobId: JobIdSchema,
    /** canonicalSpecHash of the job's stored spec (contracts/escrowBinding.ts): what a paid job's escrow carries. */
    specHash: Bytes32Hex,
    round: RoundNumberSchema,
    attempt: AttemptSchema,
    startedAt: IsoTimeSchema,
    finishedAt: IsoTimeSchema,
    selected: ClientListSchema,
    participants: ClientListSchema,
    /** Failures of the committed attempt: an error code with its message, or a disconnect reason. */
    failures: FailureListSchema,
    failedAttempts: z.array(FailedAttemptSchema).max(101),
    /** SecAgg+ cohorts whose sums counted (members only), or null when the round had none. */
    cohorts: z.array(ClientListSchema).max(LIMITS.maxClientsPerRound).nullable(),
    /** SHA-256 of the global model's codec bytes the round started from (round 0: the initial model). */
    previousModelHash: Sha256Hex,
    /** SHA-256 of the committed model's codec bytes (the checkpoint of this round). */
    modelHash: Sha256Hex,
    /** The revealed sum: its digest (aggregateDigest.ts), Σ w_i and how many clients it covers. */
    aggregate: z
      .object({
        digest: Sha256Hex,
        totalWeight: z.number().nonnegative(),
        clientCount: z.number().int().min(0).max(LIMITS.maxClientsPerRound),
      })
      .strict(),
    /** The round record's metrics; a non-finite value is written as null (JSON has no NaN). */
    metrics: z
      .record(z.string().max(200), z.number().nullable())
      .refine((m) => Object.keys(m).length <= 256, 'at most 256 metrics'),
    /** Digests of the clients' signed submissions where the mode reports them; null otherwise. */
    submissions: z.array(SubmissionDigestSchema).max(LIMITS.maxClientsPerRound).nullable(),
    /** Each participant's payout address as bound at join (paid jobs), sorted by client id. */
    payoutAddresses: z
      .array(z.object({ clientId: ClientIdSchema, address: z.string().regex(/^0x[0-9a-fA-F]{40}$/) }).strict())
      .max(LIMITS.maxClientsPerRound),
    /** SHA-256 of the validation set (dataset codec bytes) the round was evaluated on; null without one. */
    validationSet: Sha256Hex.nullable(),
  })
  .strict();
export type RoundTranscript = z.infer<typeof RoundTranscriptSchema>;

/** One coalition's utility as contribution scoring evaluated it: players by index into `contribution.values`. */
export const CoalitionUtilitySchema = z
  .object({
    coalition: z.array(z.number().int().min(0).max(LIMITS.maxClientsPerRound)).max(LIMITS.maxClientsPerRound),
    utility: z.number(),
  })
  .strict();
export type CoalitionUtility = z.infer<typeof CoalitionUtilitySchema>;

export const ScoringTranscriptSchema = z
  .object({
    type: z.literal(SCORING_TRANSCRIPT_TYPE),
    coordinatorKey: Ed25519KeyHex,
    jobId: JobIdSchema,
    round: RoundNumberSchema,
    attempt: AttemptSchema,
    /** SHA-256 of the round's transcript (the one committed on chain): this scoring is of that round. */
    roundTranscriptHash: Sha256Hex,
    /**
     * `parts`: the players are the parts of the round's sum (clients or cohorts) and U(S) rebuilds a
     * model from S's parts (one FedAvg step); `round`: the participants as one group, valued at the
     * committed model's improvement.
     */
    basis: z.enum(['parts', 'round']),
    /** Seed of GTG-Shapley's permutations (deriveSeed(spec.seed, "contribution", round)). */
    seed: z.number().int().min(0),
    contribution: z
      .object({
        method: z.enum(['exact', 'gtg']),
        metric: z.enum(['accuracy', 'loss']),
        baseline: z.number(),
        improvement: z.number(),
        evaluations: z.number().int().min(0),
        values: z
          .array(z.object({ members: ClientListSchema, value: z.number() }).strict())
          .min(1)
          .max(LIMITS.maxClientsPerRound),
      })
      .strict(),
    /** Every coalition utility the values were computed from (U(∅) = 0 included). */
    utilities: z.array(CoalitionUtilitySchema).max(MAX_TRANSCRIPT_UTILITIES),
  })
  .strict();
export type ScoringTranscript = z.infer<typeof ScoringTranscriptSchema>;

export type TranscriptKind = 'round' | 'scoring';

/** A transcript as served over REST: the transcript (a JSON object), its SHA-256 and the coordinator's signature. */
export const SignedTranscriptViewSchema = z
  .object({
    kind: z.enum(['round', 'scoring']),
    round: RoundNumberSchema,
    /** SHA-256 (hex) of the transcript's canonical JSON bytes. */
    hash: Sha256Hex,
    /** Ed25519 signature (hex) over the transcript's canonical JSON bytes. */
    signature: z.string().regex(/^[0-9a-f]{128}$/, 'expected an Ed25519 signature as 128 lowercase hex digits'),
    /** Kept as sent: the audit hashes these exact values before it parses them. */
    transcript: z.record(z.string(), z.unknown()),
  })
  .strict();
export type SignedTranscriptView = z.infer<typeof SignedTranscriptViewSchema>;
