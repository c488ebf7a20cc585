import { z } from 'zod';

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
    topology: z.record(z.string(), z.unknown()),
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
 * Secure aggregation modes: `none` (plaintext updates, the default) or `secagg` (SecAgg+: the
 * coordinator learns only the sum of the surviving clients' quantised, weighted updates).
 */
export const AggregationModeSchema = z.enum(['none', 'secagg']);
export type AggregationMode = z.infer<typeof AggregationModeSchema>;

/** SecAgg+ masks a vector of 4-byte values that travels as one message: the model must fit one chunk. */
export const SECAGG_MAX_PARAMETERS = 1_048_575;
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
  })
  .strict();
export type SecAggOptions = z.infer<typeof SecAggOptionsSchema>;

/** Body of POST /v1/jobs. */
export const JobSpecSchema = z
  .object({
    name: z.string().min(1).max(200),
    model: ModelSpecSchema,
    input: InputSpecSchema,
    /** Number of rounds to run. */
    rounds: positiveInt.max(LIMITS.maxRounds),
    /** A round aggregates only if at least this many clients answer. @default 2 */
    minClients: positiveInt.max(LIMITS.maxClientsPerRound).default(2),
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
    secureAggregation: AggregationModeSchema.default('none'),
    /** Options of `secureAggregation: "secagg"` (ignored otherwise); see SecAggOptionsSchema. */
    secagg: SecAggOptionsSchema.optional(),
    /** Seed for client sampling and model initialisation. @default 0 */
    seed: z.number().int().min(0).max(2 ** 31 - 1).default(0),
  })
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
