import { z } from 'zod';
import { createPackedPaillierParams } from '../paillier/packedPaillier';
import { JobAccessSchema } from './jobAccess';
import { topologyBoundsProblem } from './topologyBounds';

/** Hard bounds shared by every schema: checked before anything is allocated. */
export const LIMITS = {
  maxRounds: 10_000,
  maxClientsPerRound: 10_000,
  maxTensorCount: 4_096,
  maxTensorRank: 8,
  /** 10M parameters must travel; allow headroom for larger models. */
  maxParameters: 50_000_000,
  maxTopologyBytes: 1_000_000,
  maxFeatureCount: 1_000_000,
  maxClasses: 10_000,
} as const;

const positiveInt = z.number().int().positive();

/** Which model to train: a built-in name or a TF.js Layers topology (model.toJSON()). */
export const ModelSpecSchema = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('builtin'),
    name: z.enum(['mnist-cnn', 'mlp']),
    /** Hidden layer widths for `mlp`. @default [128] */
    hiddenUnits: z.array(positiveInt.max(65_536)).max(16).optional(),
  }),
  z.object({
    kind: z.literal('layers-json'),
    /** The `modelTopology` object of a TF.js Layers model (what `model.toJSON(null, false)` returns). */
    topology: z.record(z.string(), z.unknown()).superRefine((topology, ctx) => {
      // Bounded before anything walks it recursively (initializer seeding, the store's copies, TF.js).
      const problem = topologyBoundsProblem(topology);
      if (problem) ctx.addIssue({ code: 'custom', message: `the topology is ${problem}` });
    }),
  }),
]);
export type ModelSpec = z.infer<typeof ModelSpecSchema>;

/**
 * What one example looks like. Tabular CSV data names its feature columns; image-like data gives only
 * the shape (CSV columns or JSON-lines `features` arrays are read in row-major order).
 */
export const InputSpecSchema = z
  .object({
    /** Shape of one example, e.g. [28, 28, 1] or [13]. */
    shape: z.array(positiveInt).min(1).max(LIMITS.maxTensorRank),
    /** Feature column names for CSV/JSON-lines objects; their count must equal the product of `shape`. */
    featureColumns: z.array(z.string().min(1).max(128)).max(LIMITS.maxFeatureCount).optional(),
    /** Column (or JSON key) that holds the integer class label. @default "label" */
    labelColumn: z.string().min(1).max(128).default('label'),
    /** Labels are integers in [0, numClasses). */
    numClasses: z.number().int().min(2).max(LIMITS.maxClasses),
  })
  .refine((s) => s.shape.reduce((a, b) => a * b, 1) <= LIMITS.maxFeatureCount, {
    message: `an example may have at most ${LIMITS.maxFeatureCount} features`,
    path: ['shape'],
  })
  .refine((s) => !s.featureColumns || s.featureColumns.length === s.shape.reduce((a, b) => a * b, 1), {
    message: 'featureColumns must name exactly product(shape) columns',
    path: ['featureColumns'],
  });
export type InputSpec = z.infer<typeof InputSpecSchema>;

export const StrategySpecSchema = z.discriminatedUnion('name', [
  z.object({ name: z.literal('fedavg') }),
  z.object({
    name: z.literal('fedprox'),
    /** Proximal coefficient mu; clients add mu/2 * ||w - w_global||^2 to their loss. */
    mu: z.number().min(0).max(100),
  }),
  z.object({
    name: z.literal('fedadam'),
    /** Server learning rate. @default 0.01 */
    serverLearningRate: z.number().positive().max(10).default(0.01),
    /** @default 0.9 */
    beta1: z.number().min(0).lt(1).default(0.9),
    /** @default 0.99 */
    beta2: z.number().min(0).lt(1).default(0.99),
    /** Adaptivity (epsilon) term. @default 1e-3 */
    tau: z.number().positive().max(1).default(1e-3),
  }),
]);
export type StrategySpec = z.infer<typeof StrategySpecSchema>;

/**
 * Secure aggregation modes: `none` (plaintext updates), `secagg` (SecAgg+, the default: the
 * coordinator learns only the sum of the surviving clients' quantised, weighted updates) or
 * `paillier` (packed Paillier: clients encrypt under the key holder's public key, the coordinator
 * multiplies ciphertexts, the key holder decrypts only the aggregate).
 */
export const AggregationModeSchema = z.enum(['none', 'secagg', 'paillier']);
export type AggregationMode = z.infer<typeof AggregationModeSchema>;

/**
 * SecAgg+ masks a vector of 4-byte values (the parameters plus the weight), sent in parts of one chunk
 * each (messages.ts MAX_SECAGG_PARTS × MAX_CHUNK_BYTES = 256 MiB covers it); the coordinator holds
 * every client's masked vector until unmask, so its memory is about 4 × parameters × clients bytes.
 */
export const SECAGG_MAX_PARAMETERS = LIMITS.maxParameters - 1;
/** SecAgg+ sums at most 2^32 / 2^22 - 1 clients without wrapping (quantizationRange 2^22). */
export const SECAGG_MAX_CLIENTS = 1023;

/** Options of `secureAggregation: "secagg"`; every field has a default. */
export const SecAggOptionsSchema = z
  .object({
    /** Weighted deltas are clipped to [-clippingRange, clippingRange] before quantisation (clipped values are counted). @default 8 */
    clippingRange: z.number().positive().max(1e6).default(8),
    /** How long each SecAgg+ stage waits for replies (collect-masked-vectors also waits for training, up to roundDeadlineMs). @default 30000 */
    stageTimeoutMs: positiveInt.min(100).max(3_600_000).default(30_000),
    /** Neighbours per client (even, or n - 1). @default min(n - 1, 2 * ceil(log2 n)) */
    neighbourCount: z.number().int().min(2).max(255).optional(),
    /** Shares needed to reconstruct a client's secrets (2t > neighbourCount). @default floor(neighbourCount / 2) + 1 */
    threshold: z.number().int().min(2).max(255).optional(),
    /** A client's weight is min(numExamples, maxExampleWeight) / maxExampleWeight. @default 100000 */
    maxExampleWeight: z.number().int().positive().max(1_000_000_000).default(100_000),
    /**
     * Split each round's selected clients into floor(n / cohortSize) disjoint cohorts of at least
     * cohortSize clients (seeded by the job seed, round and attempt); each cohort runs its own SecAgg+
     * session and the coordinator learns each cohort's sum. Unset: one cohort of all selected clients.
     */
    cohortSize: z.number().int().min(3).max(SECAGG_MAX_CLIENTS).optional(),
  })
  .strict()
  .refine((o) => o.cohortSize === undefined || o.neighbourCount === undefined || o.neighbourCount <= o.cohortSize - 1, {
    message: 'secagg.neighbourCount must be at most cohortSize - 1 (a cohort may have only cohortSize clients)',
    path: ['neighbourCount'],
  });
export type SecAggOptions = z.infer<typeof SecAggOptionsSchema>;

/** Paillier moduli of 1024 (tests only) to 4096 bits, as lowercase hex without leading zeros. */
export const PAILLIER_MIN_KEY_BITS = 1024;
export const PAILLIER_MAX_KEY_BITS = 4096;
/** The key holder returns the decrypted sums (Float32) as one message: the model must fit one chunk. */
export const PAILLIER_MAX_PARAMETERS = 1_048_575;

const PaillierPublicKeySchema = z
  .object({
    /** The Paillier modulus n (g = n + 1) as lowercase hex, 1024..4096 bits. */
    n: z
      .string()
      .regex(/^[1-9a-f][0-9a-f]*$/, 'expected n as lowercase hex without leading zeros')
      .min(PAILLIER_MIN_KEY_BITS / 4)
      .max(PAILLIER_MAX_KEY_BITS / 4),
  })
  .strict()
  .refine(
    (k) => {
      const n = BigInt(`0x${k.n}`);
      const bits = n.toString(2).length;
      return (n & 1n) === 1n && bits >= PAILLIER_MIN_KEY_BITS && bits <= PAILLIER_MAX_KEY_BITS && bits % 8 === 0;
    },
    {
      message: `n must be odd, with a bit length that is a multiple of 8 in [${PAILLIER_MIN_KEY_BITS}, ${PAILLIER_MAX_KEY_BITS}]`,
      path: ['n'],
    },
  );

/** Options of `secureAggregation: "paillier"`; `publicKey` and `keyHolder` are required. */
export const PaillierOptionsSchema = z
  .object({
    /** The key holder's Paillier public key (`tributary keyholder keygen` prints it). */
    publicKey: PaillierPublicKeySchema,
    /** The key holder's Ed25519 public key (its client id), as 64 lowercase hex characters. */
    keyHolder: z.string().regex(/^[0-9a-f]{64}$/, "expected the key holder's client id (32 bytes as lowercase hex)"),
    /** Bits per quantised value. @default 16 */
    bits: z.number().int().min(2).max(32).default(16),
    /**
     * Weighted deltas (and the weight itself, at most 1) are quantised on [-clipRange, clipRange];
     * values outside are clipped and counted. At least 1 so the weight is never clipped. @default 1
     */
    clipRange: z.number().min(1).max(1e6).default(1),
    /** A client's weight is min(numExamples, maxExampleWeight) / maxExampleWeight. @default 100000 */
    maxExampleWeight: z.number().int().positive().max(1_000_000_000).default(100_000),
    /** How long the coordinator waits for the key holder to decrypt an aggregate. @default 60000 */
    decryptTimeoutMs: positiveInt.min(100).max(3_600_000).default(60_000),
  })
  .strict();
export type PaillierOptions = z.infer<typeof PaillierOptionsSchema>;

/**
 * Contribution scoring (coordinator/contribution): how each round's improvement of the global model on
 * the buyer's validation set is shared out among the clients (plaintext) or cohorts (secagg, paillier).
 */
export const ContributionOptionsSchema = z
  .object({
    /**
     * Utility metric: negative validation loss, or validation accuracy. Loss is the default: it moves
     * smoothly with every update, while accuracy on a finite validation set moves in steps and stalls
     * once the model is good, which makes per-round values mostly noise. @default "loss"
     */
    metric: z.enum(['accuracy', 'loss']).default('loss'),
    /** Exact Shapley up to this many players per round (2^n evaluations), GTG-Shapley above. @default 8 */
    exactUpTo: z.number().int().min(1).max(12).default(8),
    /** GTG-Shapley: at most this many model evaluations per round. @default 500 */
    maxEvaluations: z.number().int().min(2).max(100_000).default(500),
    /**
     * Private modes pay each client on its estimate minus this many standard errors: higher keeps
     * free-riders at zero sooner, lower pays honest clients whose value is still uncertain. @default 2
     */
    lowerBoundSigmas: z.number().min(0).max(5).default(2),
  })
  .strict();
export type ContributionOptions = z.infer<typeof ContributionOptionsSchema>;

/**
 * Escrow of a paid job (`TributaryEscrow`, contracts/): the buyer creates and funds the on-chain job
 * first; the coordinator recruits only once the escrow holds the budget, commits every round there
 * and settles the payouts at the end.
 */
export const ChainSpecSchema = z
  .object({
    /** Address of the TributaryEscrow contract. */
    escrow: z.string().regex(/^0x[0-9a-fA-F]{40}$/, 'expected a 20-byte address as 0x-prefixed hex'),
    /** The escrow's job id (uint256, decimal). */
    jobId: z.string().regex(/^[1-9][0-9]{0,76}$/, 'expected the escrow job id as a positive decimal integer string'),
    /** EIP-155 chain id the escrow lives on; the coordinator's RPC must report the same. */
    chainId: z
      .number()
      .int()
      .positive()
      .max(2 ** 53 - 1),
    /** Recruit only once the escrow holds at least this much (wei, decimal). @default any positive budget */
    budgetWei: z
      .string()
      .regex(/^[1-9][0-9]{0,77}$/, 'expected a positive decimal integer string (wei)')
      .optional(),
  })
  .strict();
export type ChainSpec = z.infer<typeof ChainSpecSchema>;

/** Body of POST /v1/jobs. */
export const JobSpecSchema = z
  .object({
    name: z.string().min(1).max(200),
    model: ModelSpecSchema,
    input: InputSpecSchema,
    /** Number of rounds to run. */
    rounds: positiveInt.max(LIMITS.maxRounds),
    /** A round aggregates only if at least this many clients answer. @default 3 with secagg, else 2 */
    minClients: positiveInt.max(LIMITS.maxClientsPerRound).optional(),
    /** At most this many clients are selected per round. @default 100 */
    maxClients: positiveInt.max(LIMITS.maxClientsPerRound).default(100),
    /** Fraction of connected clients to sample each round (then clamped to [minClients, maxClients]). @default 1 */
    fractionFit: z.number().gt(0).max(1).default(1),
    /** How long a round collects updates, in milliseconds. @default 60000 */
    roundDeadlineMs: positiveInt.min(100).max(86_400_000).default(60_000),
    /** How long to wait for `minClients` connected clients before a round attempt counts as failed. @default 60000 */
    quorumTimeoutMs: positiveInt.min(100).max(86_400_000).default(60_000),
    /** Failed attempts of one round before the job fails. @default 2 */
    maxRoundRetries: z.number().int().min(0).max(100).default(2),
    localEpochs: positiveInt.max(1000).default(1),
    batchSize: positiveInt.max(65_536).default(32),
    learningRate: z.number().positive().max(10).default(0.01),
    strategy: StrategySpecSchema.default({ name: 'fedavg' }),
    /** Secure aggregation is on unless a job opts out: the coordinator should not read updates. @default "secagg" */
    secureAggregation: AggregationModeSchema.default('secagg'),
    /** Options of `secureAggregation: "secagg"` (ignored otherwise); see SecAggOptionsSchema. */
    secagg: SecAggOptionsSchema.optional(),
    /** Options of `secureAggregation: "paillier"` (required then, ignored otherwise); see PaillierOptionsSchema. */
    paillier: PaillierOptionsSchema.optional(),
    /** Contribution scoring options (scoring runs whenever the job has a validation set); see ContributionOptionsSchema. */
    contribution: ContributionOptionsSchema.optional(),
    /** Escrow on an EVM chain: recruit after funding, commit rounds, settle payouts; see ChainSpecSchema. */
    chain: ChainSpecSchema.optional(),
    /** Seed for client sampling and model initialisation. @default 0 */
    seed: z
      .number()
      .int()
      .min(0)
      .max(2 ** 31 - 1)
      .default(0),
    /** Who may join as a provider: public, open (matching listings) or invite (listed listings); see JobAccessSchema. Absent = public. */
    access: JobAccessSchema.optional(),
    /**
     * Who may read the model, checkpoints, rounds and participants over REST: anyone (`public`) or the
     * owner, its delegates and the job's participants (`private`). @default "private" for a job with a
     * `chain` config, else "public"
     */
    visibility: z.enum(['public', 'private']).optional(),
  })
  // SecAgg+ hides an input only among at least 3 clients, so its default quorum is 3.
  .transform((s) => ({ ...s, minClients: s.minClients ?? (s.secureAggregation === 'secagg' ? 3 : 2) }))
  .refine((s) => s.minClients <= s.maxClients, {
    message: 'minClients must not exceed maxClients',
    path: ['minClients'],
  })
  .refine((s) => s.secureAggregation !== 'secagg' || s.minClients >= 3, {
    message: 'secureAggregation "secagg" needs minClients >= 3 (SecAgg+ hides an input only among at least 3)',
    path: ['minClients'],
  })
  .refine((s) => s.secureAggregation !== 'secagg' || s.maxClients <= SECAGG_MAX_CLIENTS, {
    message: `secureAggregation "secagg" sums at most ${SECAGG_MAX_CLIENTS} clients per round; lower maxClients`,
    path: ['maxClients'],
  })
  .refine(
    (s) =>
      s.secureAggregation !== 'secagg' || s.secagg?.cohortSize === undefined || s.minClients >= s.secagg.cohortSize,
    {
      message: 'secagg.cohortSize must not exceed minClients (a round of minClients clients must fill one cohort)',
      path: ['secagg', 'cohortSize'],
    },
  )
  .refine((s) => s.secureAggregation !== 'paillier' || s.paillier !== undefined, {
    message: 'secureAggregation "paillier" needs the paillier options (publicKey, keyHolder)',
    path: ['paillier'],
  })
  .refine((s) => s.secureAggregation !== 'paillier' || s.minClients >= 2, {
    message: 'secureAggregation "paillier" needs minClients >= 2 (the key holder must only ever decrypt a sum)',
    path: ['minClients'],
  })
  .superRefine((s, ctx) => {
    if (s.secureAggregation !== 'paillier' || !s.paillier) return;
    try {
      paillierParamsOf(s);
    } catch (err) {
      ctx.addIssue({
        code: 'custom',
        path: ['maxClients'],
        message: `secureAggregation "paillier": ${(err as Error).message}`,
      });
    }
  });
export type JobSpec = z.infer<typeof JobSpecSchema>;
export type JobSpecInput = z.input<typeof JobSpecSchema>;

/** Per-round training configuration the coordinator sends to each selected client. */
export const TrainConfigSchema = z.object({
  localEpochs: positiveInt.max(1000),
  batchSize: positiveInt.max(65_536),
  learningRate: z.number().positive().max(10),
  /** FedProx proximal coefficient; 0 for plain local SGD. */
  proximalMu: z.number().min(0).max(100),
  /** Seed for the client's shuffling, so runs are reproducible. */
  seed: z.number().int().min(0),
});
export type TrainConfig = z.infer<typeof TrainConfigSchema>;

/** The secagg options of a spec with every default filled in. */
export function secaggOptionsOf(spec: { secagg?: z.input<typeof SecAggOptionsSchema> }): SecAggOptions {
  return SecAggOptionsSchema.parse(spec.secagg ?? {});
}

/** The contribution options of a spec with every default filled in. */
export function contributionOptionsOf(spec: {
  contribution?: z.input<typeof ContributionOptionsSchema>;
}): ContributionOptions {
  return ContributionOptionsSchema.parse(spec.contribution ?? {});
}

/** The packed-Paillier parameters of a paillier job (key size from n, headroom for maxClients). Throws CONFIG_INVALID. */
export function paillierParamsOf(spec: { maxClients: number; paillier?: PaillierOptions }) {
  const options = spec.paillier;
  if (!options) throw new Error('the job has no paillier options');
  const keyBits = BigInt(`0x${options.publicKey.n}`).toString(2).length;
  return createPackedPaillierParams({
    keyBits,
    bits: options.bits,
    clipRange: options.clipRange,
    maxClients: spec.maxClients,
  });
}
