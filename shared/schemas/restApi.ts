import { z } from 'zod';
import { JobAccessSchema, ListingIdSchema } from './jobAccess';
import { PublishedListingSchema } from './listing';

/*
 * The zod schemas of the REST API's parameters, bodies and answers: the coordinator's routes validate
 * with them, its OpenAPI document is generated from them, and the buyer SDK parses answers with them.
 * (The job spec and signed listings have their own modules.)
 */

/** What an API key may do on behalf of its owner. */
export const API_KEY_SCOPES = ['jobs:read', 'jobs:write'] as const;
export type ApiKeyScope = (typeof API_KEY_SCOPES)[number];

/** An identity as the API names it: `ed25519:<client id>` (HTTP signature) or `eth:0x<address>` (SIWE). */
export const PRINCIPAL_ID_PATTERN = /^(ed25519:[0-9a-f]{64}|eth:0x[0-9a-f]{40})$/;

/** Body of POST /v1/api-keys. */
export const CreateApiKeySchema = z
  .object({
    /** A label for the owner's own listing. */
    name: z.string().min(1).max(100),
    /** What the key may do. */
    scopes: z
      .array(z.enum(API_KEY_SCOPES))
      .min(1)
      .max(API_KEY_SCOPES.length)
      .refine((s) => new Set(s).size === s.length, { message: 'scopes must be distinct' }),
    /** Lifetime in seconds. @default 2592000 (30 days); at most one year */
    expiresInSeconds: z
      .number()
      .int()
      .min(60)
      .max(365 * 86_400)
      .default(30 * 86_400),
  })
  .strict();
export type CreateApiKeyInput = z.input<typeof CreateApiKeySchema>;

/** Body of POST /v1/auth/siwe: the EIP-4361 message as signed, and its EIP-191 signature. */
export const SiweLoginSchema = z
  .object({
    message: z.string().min(1).max(4096),
    signature: z.string().regex(/^0x[0-9a-fA-F]{130}$/, 'expected a 65-byte signature as 0x-prefixed hex'),
  })
  .strict();
export type SiweLoginInput = z.infer<typeof SiweLoginSchema>;

const isoDate = z.string().meta({ format: 'date-time' });
const principalId = z
  .string()
  .regex(PRINCIPAL_ID_PATTERN, 'expected "ed25519:<64 hex>" or "eth:0x<40 hex>" (lowercase)')
  .meta({ description: 'An identity: `ed25519:<client id>` or `eth:0x<address>`.' });

// ---------------------------------------------------------------- paging

/** Largest page of a summary view. */
export const MAX_PAGE = 100;
/** Largest page of a full view (full records can be large: specs, signed listings, round member lists). */
export const MAX_FULL_PAGE = 20;
export const DEFAULT_PAGE = 20;

/** Query parameters of every list: page size, where to continue, and the view. */
export const PageQuerySchema = z.object({
  limit: z.coerce
    .number()
    .int()
    .min(1)
    .max(MAX_PAGE)
    .optional()
    .meta({
      description: `Page size; default ${DEFAULT_PAGE}, at most ${MAX_PAGE} (${MAX_FULL_PAGE} with view=full).`,
    }),
  cursor: z.string().max(512).optional().meta({ description: 'The nextCursor of the previous page.' }),
  view: z
    .enum(['summary', 'full'])
    .optional()
    .meta({ description: 'summary: the list fields only; full: whole records.' }),
});
const nextCursor = z.string().nullable().meta({ description: 'Pass as `cursor` for the next page; null on the last.' });

// ---------------------------------------------------------------- params

export const JobParamsSchema = z.object({ jobId: z.string().max(64) });
export const RoundParamsSchema = JobParamsSchema.extend({ round: z.string().max(12) });
export const ClientParamsSchema = JobParamsSchema.extend({ clientId: z.string().max(128) });
export const AddressParamsSchema = JobParamsSchema.extend({ address: z.string().max(64) });
export const ListingParamsSchema = z.object({ listingId: z.string().max(64) });
export const ApiKeyParamsSchema = z.object({ keyId: z.string().max(64) });

// ---------------------------------------------------------------- health

export const HealthSchema = z
  .object({
    status: z.literal('ok'),
    protocolVersion: z.number().int(),
    store: z.enum(['memory', 'mongo']),
    connectedClients: z.number().int().min(0),
    /**
     * Present on a node of a cluster: its id, the jobs whose lease it holds (load balancers read it) and
     * the paid jobs whose chain lease it holds (their chain worker runs here).
     */
    cluster: z
      .object({ node: z.string(), leases: z.array(z.string()), chainLeases: z.array(z.string()).optional() })
      .optional(),
  })
  .meta({ id: 'Health' });

// ---------------------------------------------------------------- jobs

export const JobStatusSchema = z.enum(['pending', 'running', 'completed', 'failed']);

/** A job in a list (view=summary). */
export const JobSummarySchema = z
  .object({
    id: z.string(),
    name: z.string(),
    status: JobStatusSchema,
    visibility: z.enum(['public', 'private']),
    currentRound: z.number().int().min(0),
    rounds: z.number().int().min(1),
    parameters: z.number().int().min(0),
    secureAggregation: z.string(),
    owner: principalId.nullable(),
    createdAt: isoDate,
    updatedAt: isoDate,
  })
  .meta({ id: 'JobSummary' });

/** One job, whole: its spec (defaults filled in) and model hash; managers also see its delegates. */
export const JobViewSchema = JobSummarySchema.extend({
  modelHash: z.string(),
  spec: z.record(z.string(), z.unknown()).meta({ description: 'The job spec as accepted, defaults filled in.' }),
  failureReason: z.string().optional(),
  delegates: z.array(principalId).optional().meta({ description: "Shown to the job's owner and delegates." }),
}).meta({ id: 'Job' });

export const ListJobsQuerySchema = PageQuerySchema.extend({
  status: JobStatusSchema.optional(),
  mine: z
    .enum(['true', 'false'])
    .optional()
    .meta({ description: 'true: only jobs the caller owns or is a delegate of (needs an identity).' }),
});

export const JobListSchema = z
  .object({ jobs: z.array(z.union([JobViewSchema, JobSummarySchema])), nextCursor })
  .meta({ id: 'JobList' });

/** Body of PUT /v1/jobs/:id/delegates. */
export const DelegatesBodySchema = z
  .object({
    delegates: z
      .array(principalId)
      .max(16)
      .refine((d) => new Set(d).size === d.length, 'must be distinct'),
  })
  .strict();

/** Body of PUT /v1/jobs/:id/access (the invitations). */
export const AccessBodySchema = z.object({ access: JobAccessSchema }).strict();

/** Body of POST /v1/jobs/:id/cancel. */
export const CancelBodySchema = z
  .object({
    reason: z.string().max(200).optional(),
    /**
     * A paid job only: the escrow buyer's EIP-712 CancelJob signature (contracts/escrowBinding.ts
     * signCancelJob), 0x-prefixed hex. Required for jobs with a `chain` config.
     */
    signature: z
      .string()
      .regex(/^0x[0-9a-fA-F]{128,130}$/, 'expected a 64- or 65-byte signature as 0x-prefixed hex')
      .optional(),
  })
  .strict();

export const ValidationSetUploadedSchema = z
  .object({
    jobId: z.string(),
    examples: z.number().int().min(0),
    sha256: z.string().meta({ description: 'SHA-256 (hex) of the uploaded body.' }),
  })
  .meta({ id: 'ValidationSetUploaded' });

// ---------------------------------------------------------------- rounds and participants

const failure = z.object({ clientId: z.string(), reason: z.string() });

export const RoundSummarySchema = z
  .object({
    round: z.number().int(),
    attempt: z.number().int(),
    status: z.enum(['completed', 'failed']),
    selectedCount: z.number().int(),
    participantCount: z.number().int(),
    metrics: z.record(z.string(), z.number()),
    modelHash: z.string().optional(),
    failureReason: z.string().optional(),
    startedAt: isoDate,
    finishedAt: isoDate,
  })
  .meta({ id: 'RoundSummary' });

export const RoundViewSchema = z
  .object({
    jobId: z.string(),
    round: z.number().int(),
    attempt: z.number().int(),
    status: z.enum(['completed', 'failed']),
    selected: z.array(z.string()),
    participants: z.array(z.string()),
    failures: z.array(failure),
    metrics: z.record(z.string(), z.number()),
    modelHash: z.string().optional(),
    failureReason: z.string().optional(),
    cohorts: z.array(z.array(z.string())).optional(),
    contribution: z.record(z.string(), z.unknown()).optional(),
    startedAt: isoDate,
    finishedAt: isoDate,
  })
  .meta({ id: 'Round' });

export const RoundListSchema = z
  .object({ rounds: z.array(z.union([RoundViewSchema, RoundSummarySchema])), nextCursor })
  .meta({ id: 'RoundList' });

export const ParticipantSchema = z
  .object({
    clientId: z.string(),
    roundsCompleted: z.number().int(),
    lastSeenAt: isoDate.optional(),
    joinedAt: isoDate.optional(),
    payoutAddress: z
      .string()
      .optional()
      .meta({ description: "Shown to the job's managers and to the participant itself." }),
  })
  .meta({ id: 'Participant' });

export const ParticipantListSchema = z
  .object({ participants: z.array(ParticipantSchema), nextCursor })
  .meta({ id: 'ParticipantList' });

// ---------------------------------------------------------------- models, contributions, chain

export const ModelJsonSchema = z
  .object({
    format: z.literal('layers-model'),
    generatedBy: z.string(),
    convertedBy: z.null(),
    modelTopology: z.unknown(),
    weightsManifest: z.array(
      z.object({ paths: z.array(z.string()), weights: z.array(z.record(z.string(), z.unknown())) }),
    ),
    tributary: z.object({ jobId: z.string(), round: z.number().int(), modelHash: z.string() }),
  })
  .meta({ id: 'ModelJson' });

const ScoredRoundSchema = z.object({
  round: z.number().int(),
  attempt: z.number().int(),
  method: z.enum(['exact', 'gtg']),
  metric: z.enum(['accuracy', 'loss']),
  baseline: z.number(),
  improvement: z.number(),
  evaluations: z.number().int(),
  values: z.array(z.object({ members: z.array(z.string()), value: z.number() })),
});

const ClientScoreSchema = z.object({
  clientId: z.string(),
  score: z.number(),
  share: z.number(),
  rounds: z.number().int(),
  estimate: z.number().optional(),
  standardError: z.number().optional(),
});

export const ContributionReportSchema = z
  .object({
    jobId: z.string(),
    status: z.enum(['scored', 'skipped']),
    reason: z.string().optional(),
    method: z.enum(['shapley', 'cohort-shapley-least-squares']),
    metric: z.enum(['accuracy', 'loss']),
    unscoredRounds: z.array(z.number().int()),
    rounds: z.array(ScoredRoundSchema),
    clients: z.array(ClientScoreSchema),
  })
  .meta({ id: 'ContributionReport' });

export const ClientContributionSchema = ClientScoreSchema.extend({
  jobId: z.string(),
  method: z.enum(['shapley', 'cohort-shapley-least-squares']),
  metric: z.enum(['accuracy', 'loss']),
  roundValues: z.array(
    z.object({
      round: z.number().int(),
      attempt: z.number().int(),
      method: z.enum(['exact', 'gtg']),
      improvement: z.number(),
      members: z.array(z.string()),
      value: z.number(),
    }),
  ),
}).meta({ id: 'ClientContribution' });

export const ChainStatusSchema = z
  .object({
    funded: z.boolean(),
    commits: z.array(z.record(z.string(), z.unknown())),
    settlement: z.record(z.string(), z.unknown()),
  })
  .loose()
  .meta({ id: 'ChainStatus' });

export const PayoutSchema = z
  .object({ account: z.string(), amountWei: z.string(), proof: z.array(z.string()) })
  .loose()
  .meta({ id: 'Payout' });
export const PayoutListSchema = z.object({ payouts: z.array(PayoutSchema) }).meta({ id: 'PayoutList' });

// ---------------------------------------------------------------- audit

export const AuditEntrySchema = z
  .object({
    id: z.string(),
    action: z.string(),
    actor: z.string(),
    at: isoDate,
    jobId: z.string().optional(),
    digests: z.record(z.string(), z.string()).optional(),
    details: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).optional(),
  })
  .meta({ id: 'AuditEntry' });
export const AuditListSchema = z.object({ entries: z.array(AuditEntrySchema), nextCursor }).meta({ id: 'AuditList' });

// ---------------------------------------------------------------- identity

export const SiweNonceSchema = z
  .object({ nonce: z.string(), domain: z.string(), uri: z.string(), expiresAt: isoDate })
  .meta({ id: 'SiweNonce' });

export const SessionSchema = z
  .object({
    token: z.string(),
    tokenType: z.literal('Bearer'),
    expiresAt: isoDate,
    identity: principalId,
  })
  .meta({ id: 'Session' });

export const WhoAmISchema = z
  .object({
    identity: principalId,
    via: z.enum(['http-signature', 'jwt', 'api-key']),
    scopes: z.union([z.literal('all'), z.array(z.enum(API_KEY_SCOPES))]),
  })
  .meta({ id: 'WhoAmI' });

export const ApiKeyViewSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    scopes: z.array(z.enum(API_KEY_SCOPES)),
    createdAt: isoDate,
    expiresAt: isoDate,
    revokedAt: isoDate.optional(),
  })
  .meta({ id: 'ApiKey' });

export const CreatedApiKeySchema = ApiKeyViewSchema.extend({
  key: z.string().meta({ description: 'The token, shown this once: send it as `Authorization: Bearer <key>`.' }),
}).meta({ id: 'CreatedApiKey' });

export const ApiKeyListSchema = z.object({ keys: z.array(ApiKeyViewSchema) }).meta({ id: 'ApiKeyList' });

// ---------------------------------------------------------------- listings

export const ListingSummarySchema = z
  .object({
    id: ListingIdSchema,
    provider: z.string(),
    name: z.string(),
    rows: z.number().int(),
    tags: z.array(z.string()),
    shape: z.array(z.number().int()),
    numClasses: z.number().int(),
    pricePerRoundWei: z.string(),
    publishedAt: isoDate,
  })
  .meta({ id: 'ListingSummary' });

export const ListingViewSchema = PublishedListingSchema.meta({ id: 'Listing' });

export const ListingListSchema = z
  .object({ listings: z.array(z.union([ListingViewSchema, ListingSummarySchema])), nextCursor })
  .meta({ id: 'ListingList' });
