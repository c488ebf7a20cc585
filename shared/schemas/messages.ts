import { z } from 'zod';
import { JobSpecSchema, TrainConfigSchema, LIMITS } from './jobSpec';

/**
 * Bumped on any incompatible change to the socket events below or to what their payloads mean;
 * checked at connect. 3: paillier submissions are signed and the key holder receives every
 * contribution (aggregate:ciphertexts); a SecAgg+ masked vector's weight element is quantised on
 * [0, 1] (quantizeWeightedUpdate), not on the deltas' range, so a version-2 client's sums would
 * decode wrongly.
 */
export const PROTOCOL_VERSION = 3;

const hex = (bytes: number) =>
  z.string().regex(new RegExp(`^[0-9a-f]{${bytes * 2}}$`), `expected ${bytes} bytes as lowercase hex`);
export const JobIdSchema = z
  .string()
  .regex(/^[A-Za-z0-9_-]{1,64}$/, 'expected a job id of 1-64 characters [A-Za-z0-9_-]');

/** Upload chunks are at most this large, and socket.io's maxHttpBufferSize is set just above it. */
export const MAX_CHUNK_BYTES = 4 * 1024 * 1024;
/** Largest JSON body of a signed message. */
export const MAX_BODY_CHARS = 64 * 1024;

/** The socket.io handshake `auth` object: proves possession of the client's Ed25519 key. */
export const HandshakeAuthSchema = z.object({
  protocolVersion: z.number().int(),
  publicKey: hex(32),
  /** Milliseconds since the epoch; must be within the coordinator's window. */
  timestamp: z.number().int().nonnegative(),
  nonce: hex(16),
  /** The coordinator the handshake is for: its origin (shared/identity/audience.ts). */
  audience: z.string().min(1).max(512),
  /** Signature over SignedFields { jobId: '*', round: 0, stage: 'auth', payloadHash: sha256(`${timestamp} ${audience}`), nonce }. */
  signature: hex(64),
});
export type HandshakeAuth = z.infer<typeof HandshakeAuthSchema>;

/**
 * Every client -> coordinator message. `body` is a JSON string (so the receiver hashes exactly the
 * bytes that were signed) and `data` an optional binary attachment.
 */
export const SignedMessageSchema = z.object({
  jobId: JobIdSchema,
  round: z.number().int().min(0).max(LIMITS.maxRounds),
  stage: z.string().min(1).max(64),
  nonce: hex(16),
  signature: hex(64),
  body: z.string().max(MAX_BODY_CHARS),
  data: z
    .custom<Uint8Array>((v) => v instanceof Uint8Array, 'expected binary data')
    .refine((v) => v.length <= MAX_CHUNK_BYTES, `binary data may be at most ${MAX_CHUNK_BYTES} bytes`)
    .optional(),
});
export type SignedMessage = z.infer<typeof SignedMessageSchema>;

/**
 * A provider's payout address, bound to its Ed25519 identity both ways (shared/identity/payoutBinding.ts):
 * the Ed25519 key signs the address and the Ethereum key signs (EIP-191) the Ed25519 public key.
 */
export const PayoutBindingSchema = z
  .object({
    address: z.string().regex(/^0x[0-9a-fA-F]{40}$/, 'expected a 20-byte address as 0x-prefixed hex'),
    /** Ed25519 signature over payoutBindingBytes(clientId, address). */
    ed25519Signature: hex(64),
    /** EIP-191 personal_sign signature (65 bytes) over payoutBindingText(clientId). */
    ethSignature: z.string().regex(/^0x[0-9a-fA-F]{130}$/, 'expected a 65-byte signature as 0x-prefixed hex'),
  })
  .strict();
export type PayoutBinding = z.infer<typeof PayoutBindingSchema>;

/** Body of `job:join`: a payout binding is required by jobs with a `chain` config. */
export const JoinBodySchema = z.object({ payout: PayoutBindingSchema.optional() }).strict();

export const UpdateChunkBodySchema = z
  .object({
    transferId: hex(16),
    index: z.number().int().min(0).max(100_000),
    count: z.number().int().min(1).max(100_000),
    totalBytes: z
      .number()
      .int()
      .positive()
      .max(LIMITS.maxParameters * 4 + 16 * 1024 * 1024),
  })
  .strict();
export type UpdateChunkBody = z.infer<typeof UpdateChunkBodySchema>;

/**
 * A client's training metrics. Names are plain identifiers: they become keys of the round record, and
 * a MongoDB-compatible store refuses a document with a key containing '.' (the whole round with it).
 */
export const LocalMetricsSchema = z
  .record(
    z.string().regex(/^[A-Za-z0-9_]{1,64}$/, 'metric names are 1-64 letters, digits or underscores'),
    z.number().finite(),
  )
  .refine((m) => Object.keys(m).length <= 32, {
    message: 'at most 32 metrics',
  });

export const UpdateCommitBodySchema = z
  .object({
    transferId: hex(16),
    /** SHA-256 hex of the reassembled update bytes. */
    updateHash: hex(32),
    numExamples: z.number().int().positive().max(1_000_000_000),
    metrics: LocalMetricsSchema,
    /**
     * `paillier` jobs (required there, absent elsewhere): the client's Ed25519 signature over its
     * submission, i.e. `updateHash` bound to (job, round, attempt) (shared/paillier/submission.ts).
     */
    submissionSignature: hex(64).optional(),
  })
  .strict();
export type UpdateCommitBody = z.infer<typeof UpdateCommitBodySchema>;

/** Answer to every client message. */
export const AckSchema = z.discriminatedUnion('ok', [
  z.object({ ok: z.literal(true), result: z.unknown().optional() }),
  z.object({
    ok: z.literal(false),
    error: z.object({ code: z.string(), message: z.string(), details: z.unknown().optional() }),
  }),
]);
export type Ack = z.infer<typeof AckSchema>;

const ManifestSchema = z
  .array(
    z.object({
      name: z.string().min(1).max(512),
      shape: z.array(z.number().int().nonnegative()).max(LIMITS.maxTensorRank),
    }),
  )
  .max(LIMITS.maxTensorCount);

/** What a client learns when it joins (validated by the client: coordinator messages are a trust boundary too). */
export const JoinResultSchema = z.object({
  jobId: JobIdSchema,
  spec: JobSpecSchema,
  status: z.enum(['pending', 'running', 'completed', 'failed']),
  currentRound: z.number().int().min(0),
  weightManifest: ManifestSchema,
});
export type JoinResult = z.infer<typeof JoinResultSchema>;

/** A training task for one selected client. */
export const RoundTaskSchema = z.object({
  jobId: JobIdSchema,
  round: z.number().int().positive(),
  attempt: z.number().int().min(0),
  config: TrainConfigSchema,
  /** SHA-256 hex of the global model's codec bytes, to verify the download. */
  modelHash: hex(32),
  /** Path (relative to the coordinator URL) of the global model in codec form. */
  modelPath: z.string().startsWith('/v1/').max(512),
  /** Milliseconds since the epoch when the round stops collecting. */
  deadline: z.number().int().positive(),
  /** Chunk size the client must use for its upload. */
  chunkBytes: z.number().int().positive().max(MAX_CHUNK_BYTES),
});
export type RoundTask = z.infer<typeof RoundTaskSchema>;

export const RoundClosedSchema = z.object({
  jobId: JobIdSchema,
  round: z.number().int().positive(),
  status: z.enum(['completed', 'failed']),
});

export const JobFinishedSchema = z.object({
  jobId: JobIdSchema,
  status: z.enum(['completed', 'failed']),
  reason: z.string().optional(),
});
export type JobFinished = z.infer<typeof JobFinishedSchema>;

/** SecAgg+ stage names on the wire (shared/secagg/stages.ts). */
const SecAggStageSchema = z.enum(['setup', 'share-keys', 'collect-masked-vectors', 'consistency-check', 'unmask']);

/** Largest encoded SecAgg+ request payload (255 neighbours' sealed bundles fit comfortably). */
export const MAX_SECAGG_PAYLOAD_CHARS = 1024 * 1024;

/**
 * Coordinator -> client: one SecAgg+ server message for a round attempt. `payload` is the message in
 * binary JSON (shared/codec/binaryJson.ts); the client validates it with the SecAgg+ schemas.
 */
export const SecAggRequestSchema = z.object({
  jobId: JobIdSchema,
  round: z.number().int().positive(),
  attempt: z.number().int().min(0),
  stage: SecAggStageSchema,
  payload: z.string().max(MAX_SECAGG_PAYLOAD_CHARS),
});
export type SecAggRequest = z.infer<typeof SecAggRequestSchema>;

/** A masked vector larger than one message travels in at most this many parts. */
export const MAX_SECAGG_PARTS = 64;

/**
 * Body of a client's `secagg:reply` (stage "secagg-reply"): the SecAgg+ reply in binary JSON. At
 * collect-masked-vectors the masked vector is not in the body but the message's binary `data`
 * (covered by the signature like the body), and `reply` omits `maskedVector`. A masked vector larger
 * than MAX_CHUNK_BYTES is split into `part.count` consecutive messages of at most MAX_CHUNK_BYTES
 * each (same `reply` in every part, sent in order, each acknowledged before the next).
 */
export const SecAggReplyBodySchema = z
  .object({
    attempt: z.number().int().min(0),
    stage: SecAggStageSchema,
    reply: z.string().max(MAX_BODY_CHARS),
    part: z
      .object({ index: z.number().int().min(0), count: z.number().int().min(1).max(MAX_SECAGG_PARTS) })
      .strict()
      .refine((p) => p.index < p.count, { message: 'part.index must be below part.count' })
      .optional(),
  })
  .strict();
export type SecAggReplyBody = z.infer<typeof SecAggReplyBodySchema>;

/**
 * Largest encrypted update of one `paillier` client: PAILLIER_MAX_PARAMETERS + 1 values take at most
 * ~14.1 MB at the densest options the spec allows (1024-bit key, 53-bit slots).
 */
export const MAX_PAILLIER_UPDATE_BYTES = 16 * 1024 * 1024;

/**
 * Most ciphertext bytes one decryption sends the key holder: every contributor's whole update, so
 * maxClients × update bytes, which job creation checks against this bound (JOB_SPEC_INVALID).
 */
export const MAX_DECRYPT_REQUEST_BYTES = 1024 * 1024 * 1024;

const ClientIdHexSchema = hex(32);

/** One contributor of an aggregate: its client id and its signature over its submission. */
export const DecryptContributionSchema = z.object({ clientId: ClientIdHexSchema, signature: hex(64) }).strict();
export type DecryptContribution = z.infer<typeof DecryptContributionSchema>;

/**
 * Coordinator -> key holder (`paillier` jobs): decrypt the sum of these contributions to round
 * `round` attempt `attempt` (vectors of `length` values: the weighted delta in manifest order, then
 * the summed weight). `selected` is the attempt's selection as the coordinator records it. The
 * contributors' ciphertexts follow as `contributions.length` `aggregate:ciphertexts` messages, in
 * order (index 0, 1, ...): the key holder verifies each signature and recomputes the product itself.
 */
export const AggregateDecryptRequestSchema = z.object({
  jobId: JobIdSchema,
  round: z.number().int().positive(),
  attempt: z.number().int().min(0),
  length: z
    .number()
    .int()
    .positive()
    .max(LIMITS.maxParameters + 1),
  selected: z.array(ClientIdHexSchema).max(LIMITS.maxClientsPerRound),
  contributions: z.array(DecryptContributionSchema).max(LIMITS.maxClientsPerRound),
});
export type AggregateDecryptRequest = z.infer<typeof AggregateDecryptRequestSchema>;

/** Coordinator -> key holder: the ciphertexts of contribution `index` of the decryption just requested. */
export const AggregateCiphertextsSchema = z.object({
  jobId: JobIdSchema,
  round: z.number().int().positive(),
  attempt: z.number().int().min(0),
  index: z
    .number()
    .int()
    .min(0)
    .max(LIMITS.maxClientsPerRound - 1),
  ciphertexts: z
    .custom<Uint8Array>((v) => v instanceof Uint8Array, 'expected binary ciphertexts')
    .refine((v) => v.length <= MAX_PAILLIER_UPDATE_BYTES, `at most ${MAX_PAILLIER_UPDATE_BYTES} bytes of ciphertexts`),
});
export type AggregateCiphertexts = z.infer<typeof AggregateCiphertextsSchema>;

/** Why a key holder refused to decrypt (docs/secure-aggregation.md, "The Paillier key holder's checks"). */
export const DECRYPT_REFUSAL_REASONS = [
  /** The request or its ciphertext messages do not fit the job (sizes, order, vector length). */
  'malformed',
  /** Fewer than minClients distinct contributors. */
  'too-few-clients',
  /** A client id appears twice among the contributors. */
  'duplicate-contributor',
  /** A contributor is not in the attempt's selection, or the selection is not one the job allows. */
  'not-selected',
  /** A contribution's signature does not verify under its client id for this round attempt. */
  'signature-invalid',
  /** A ciphertext is outside [1, n²) or not a unit mod n. */
  'ciphertext-invalid',
  /** The job is not running (per the coordinator's REST API). */
  'job-not-running',
  /** The round is not the job's next round. */
  'round-not-next',
  /** The attempt is not the one after the round's recorded attempts. */
  'attempt-not-next',
  /** This round attempt was already decrypted, with other contributions. */
  'already-decrypted',
  /** The contributors overlap, without being equal to, those of another decrypted attempt of the round. */
  'overlaps-decrypted',
  /** The coordinator's records of an earlier decrypted attempt differ from what the key holder was shown. */
  'record-diverges',
  /** The job's state could not be read from the coordinator. */
  'job-state-unavailable',
] as const;
export const DecryptRefusalReasonSchema = z.enum(DECRYPT_REFUSAL_REASONS);
export type DecryptRefusalReason = z.infer<typeof DecryptRefusalReasonSchema>;

/** Body of the key holder's `aggregate:result` (stage "aggregate-result"); the Float32 sums are the message's `data`. */
export const AggregateResultBodySchema = z
  .object({
    attempt: z.number().int().min(0),
    length: z
      .number()
      .int()
      .positive()
      .max(LIMITS.maxParameters + 1),
    /** Set when the key holder refuses or fails to decrypt (then there is no data). */
    error: z.string().max(1000).optional(),
    /** Set when the key holder refused (a check failed; nothing was decrypted): why. */
    refusal: z.object({ reason: DecryptRefusalReasonSchema }).strict().optional(),
  })
  .strict();
export type AggregateResultBody = z.infer<typeof AggregateResultBodySchema>;
