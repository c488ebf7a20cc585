import { z } from 'zod';
import {
  type AggregationSpec,
  aggregationDefinitionOf,
  type BuiltinAggregationMode,
  type ExtensionModeName,
  type HeOptionsSchema,
  type NoneOptionsSchema,
  type PaillierOptionsSchema,
  type SecAggOptionsSchema,
} from './aggregationSpec';
import { JobAccessSchema } from './jobAccess';
import { PrivacySpecSchema } from './privacySpec';
import { StrategySpecSchema } from './strategySpec';
import { topologyBoundsProblem } from './topologyBounds';

export * from './aggregationSpec';

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

export { StrategySpecSchema, type StrategySpec } from './strategySpec';

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

/** A secp256k1 signature (EIP-712 typed data) as 0x-prefixed hex: 65 bytes, or 64 in EIP-2098 compact form. */
export const EscrowSignatureSchema = z
  .string()
  .regex(/^0x(?:[0-9a-fA-F]{128}|[0-9a-fA-F]{130})$/, 'expected a 65-byte secp256k1 signature as 0x-prefixed hex');

/**
 * Escrow of a paid job (`TributaryEscrow`, contracts/): the buyer creates and funds the on-chain job
 * first, with the spec's canonical hash, and signs the binding (contracts/escrowBinding.ts); the
 * coordinator accepts the job only from that buyer, recruits once the escrow holds the budget,
 * commits every round there and settles the payouts at the end.
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
    /**
     * The escrow job's buyer's EIP-712 `EscrowBinding` signature over (chain id, escrow, escrow job id,
     * coordinator, canonical spec hash); left out of the spec hash. Required by the coordinator (a
     * missing one is refused with ESCROW_BINDING_INVALID); see contracts/escrowBinding.ts.
     */
    authorization: z.object({ signature: EscrowSignatureSchema }).strict().optional(),
  })
  .strict();
export type ChainSpec = z.infer<typeof ChainSpecSchema>;

/** The fields every job spec has, whatever its aggregation mode. */
const CommonSpecSchema = z.object({
  name: z.string().min(1).max(200),
  model: ModelSpecSchema,
  input: InputSpecSchema,
  /** Number of rounds to run. */
  rounds: positiveInt.max(LIMITS.maxRounds),
  /** A round aggregates only if at least this many clients answer. @default 3 with secagg, else 2 (the mode's default) */
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
  /**
   * The aggregation mode (see aggregationSpec.ts): secure aggregation is on unless a job opts out, the
   * coordinator should not read updates. @default "secagg"
   */
  secureAggregation: z.string().min(1).max(64).optional(),
  /** Options of the mode named by `secureAggregation`, in the block named after it (see aggregationSpec.ts). */
  none: z.unknown().optional(),
  secagg: z.unknown().optional(),
  paillier: z.unknown().optional(),
  he: z.unknown().optional(),
  /** Options of a mode registered at run time. */
  aggregationOptions: z.unknown().optional(),
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
  /**
   * Client-level differential privacy (clipping, noise, an RDP accountant with a budget cut-off); see
   * PrivacySpecSchema and docs/privacy.md. Checked against the rest of the spec and the model at job
   * creation (assertPrivacyUsable). Absent = no DP.
   */
  privacy: PrivacySpecSchema.optional(),
});
type CommonSpec = Omit<
  z.output<typeof CommonSpecSchema>,
  'minClients' | 'secureAggregation' | 'none' | 'secagg' | 'paillier' | 'he' | 'aggregationOptions'
> & { minClients: number };

/** A parsed job spec: the common fields and the aggregation part (a discriminated union, defaults filled). */
export type JobSpec = CommonSpec & AggregationSpec;

/**
 * Body of POST /v1/jobs. The aggregation mode's options are parsed by the mode's own definition
 * (aggregationSpec.ts), so the output carries exactly one options block, with its defaults.
 */
export const JobSpecSchema = CommonSpecSchema.transform((raw, ctx): JobSpec => {
  const found = aggregationDefinitionOf(raw);
  if ('error' in found) {
    ctx.addIssue({ code: 'custom', path: ['secureAggregation'], message: found.error });
    return z.NEVER;
  }
  const { definition, optionsKey } = found;
  const options = definition.options.safeParse(raw[optionsKey as keyof typeof raw] ?? {});
  if (!options.success) {
    for (const issue of options.error.issues) {
      ctx.addIssue({ code: 'custom', path: [optionsKey, ...issue.path.map(String)], message: issue.message });
    }
    return z.NEVER;
  }
  const { secureAggregation: _m, none: _n, secagg: _s, paillier: _p, he: _h, aggregationOptions: _o, ...common } = raw;
  const minClients = common.minClients ?? definition.defaultMinClients;
  let valid = true;
  if (minClients > common.maxClients) {
    ctx.addIssue({ code: 'custom', path: ['minClients'], message: 'minClients must not exceed maxClients' });
    valid = false;
  }
  for (const issue of definition.rules({ minClients, maxClients: common.maxClients }, options.data)) {
    ctx.addIssue({ code: 'custom', path: issue.path, message: issue.message });
    valid = false;
  }
  if (!valid) return z.NEVER;
  return { ...common, minClients, secureAggregation: definition.name, [optionsKey]: options.data } as JobSpec;
});
/** What a caller may send as a job spec (defaults optional; the mode's options block typed). */
export type JobSpecInput = Omit<
  z.input<typeof CommonSpecSchema>,
  'secureAggregation' | 'none' | 'secagg' | 'paillier' | 'he' | 'aggregationOptions'
> & {
  secureAggregation?: BuiltinAggregationMode | ExtensionModeName;
  none?: z.input<typeof NoneOptionsSchema>;
  secagg?: z.input<typeof SecAggOptionsSchema>;
  paillier?: z.input<typeof PaillierOptionsSchema>;
  he?: z.input<typeof HeOptionsSchema>;
  aggregationOptions?: Record<string, unknown>;
};

/** Per-round training configuration the coordinator sends to each selected client. */
export const TrainConfigSchema = z.object({
  localEpochs: positiveInt.max(1000),
  batchSize: positiveInt.max(65_536),
  learningRate: z.number().positive().max(10),
  /** FedProx proximal coefficient; 0 for plain local SGD. */
  proximalMu: z.number().min(0).max(100),
  /** Seed for the client's shuffling, so runs are reproducible. */
  seed: z.number().int().min(0),
  /** Jobs with a `privacy` block: this round's L2 clipping norm C (it moves per round under adaptive clipping). */
  clippingNorm: z.number().gt(0).max(1e6).optional(),
});
export type TrainConfig = z.infer<typeof TrainConfigSchema>;

/** The contribution options of a spec with every default filled in. */
export function contributionOptionsOf(spec: {
  contribution?: z.input<typeof ContributionOptionsSchema>;
}): ContributionOptions {
  return ContributionOptionsSchema.parse(spec.contribution ?? {});
}
