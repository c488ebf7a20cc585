import { z } from 'zod';

/** At most this many Byzantine parts may be assumed (the per-round client limit of jobSpec's LIMITS). */
const MAX_BYZANTINE = 10_000;

/** f: how many parts (clients in plaintext, cohorts under SecAgg+) the rule assumes may be Byzantine. */
const byzantineCount = (min: number) => z.number().int().min(min).max(MAX_BYZANTINE).default(1);

/**
 * A robust aggregation rule: how the round's mean update is formed from its parts (each client's own
 * update in plaintext, each cohort's mean under SecAgg+ with cohorts) instead of the weighted mean.
 * Every rule counts each part once, whatever its weight (see coordinator/strategy/robust/robustMean.ts).
 * The rules and their papers:
 * - `median`: coordinate-wise median (Yin et al., ICML 2018); needs n >= 2f + 1.
 * - `trimmed-mean`: per coordinate, drop the f largest and f smallest values, average the rest
 *   (Yin et al., ICML 2018); needs n > 2f.
 * - `krum`: the one part closest to its n - f - 2 nearest neighbours (Blanchard et al., NeurIPS 2017); needs n > 2f + 2.
 * - `multi-krum`: the mean of the m best-scored parts (same paper); needs n > 2f + 2 and m <= n.
 * - `bulyan`: Krum picks n - 2f parts one at a time, then a coordinate-wise trimmed mean around the
 *   median of those (El Mhamdi et al., ICML 2018); needs n >= 4f + 3.
 * - `centered-clipping`: clip each part's distance from the previous round's mean update to tau, and
 *   step towards the clipped mean, `iterations` times (Karimireddy, He & Jaggi, ICML 2021).
 */
export const RobustRuleSchema = z.discriminatedUnion('rule', [
  z
    .object({
      rule: z.literal('median'),
      /** Byzantine parts tolerated: rounds need n >= 2f + 1 parts. @default 1 */
      f: byzantineCount(0),
    })
    .strict(),
  z
    .object({
      rule: z.literal('trimmed-mean'),
      /** Values dropped at each end of every coordinate: rounds need n > 2f parts. @default 1 */
      f: byzantineCount(1),
    })
    .strict(),
  z
    .object({
      rule: z.literal('krum'),
      /** Byzantine parts tolerated: rounds need n > 2f + 2 parts. @default 1 */
      f: byzantineCount(0),
    })
    .strict(),
  z
    .object({
      rule: z.literal('multi-krum'),
      /** Byzantine parts tolerated: rounds need n > 2f + 2 parts. @default 1 */
      f: byzantineCount(0),
      /** How many best-scored parts are averaged (at most n). @default n - f */
      m: z.number().int().min(1).max(MAX_BYZANTINE).optional(),
    })
    .strict(),
  z
    .object({
      rule: z.literal('bulyan'),
      /** Byzantine parts tolerated: rounds need n >= 4f + 3 parts. @default 1 */
      f: byzantineCount(0),
    })
    .strict(),
  z
    .object({
      rule: z.literal('centered-clipping'),
      /** Clipping radius: no part moves the centre by more than tau/n per iteration (L2, in weight units). */
      tau: z.number().positive().max(1e6),
      /** Clipping iterations per round; one suffices once the centre is the previous round's update (paper, section 4). @default 1 */
      iterations: z.number().int().min(1).max(100).default(1),
    })
    .strict(),
]);
export type RobustRule = z.infer<typeof RobustRuleSchema>;
export type RobustRuleName = RobustRule['rule'];

/** Fields every strategy takes: how the mean update is formed and how far one round may move the model. */
const serverSide = {
  /** Robust aggregation over the round's parts instead of the weighted mean; see RobustRuleSchema. Absent: the weighted mean. */
  robust: RobustRuleSchema.optional(),
  /**
   * Server-side L2 bound on the round's mean update (norm bounding, Sun et al. 2019): a longer mean
   * update is scaled down to this norm before the server optimiser applies it. Absent: unbounded.
   */
  maxUpdateNorm: z.number().positive().max(1e9).optional(),
};

/** Server learning rate, decay rates and adaptivity of the adaptive optimisers (Reddi et al., ICLR 2021, Algorithm 2). */
const adaptive = (beta1Default: number) => ({
  /** Server learning rate eta. @default 0.01 */
  serverLearningRate: z.number().positive().max(10).default(0.01),
  /** Momentum decay beta1 (0: no momentum). */
  beta1: z.number().min(0).lt(1).default(beta1Default),
  /** Adaptivity (epsilon) term tau. @default 1e-3 */
  tau: z.number().positive().max(1).default(1e-3),
});

/**
 * `strategy` of a job: the server optimiser (`name` and its parameters), plus the optional robust
 * rule and norm bound shared by all of them. FedProx differs from FedAvg only on the client (mu).
 */
export const StrategySpecSchema = z.discriminatedUnion('name', [
  z.object({ name: z.literal('fedavg'), ...serverSide }),
  z.object({
    name: z.literal('fedprox'),
    /** Proximal coefficient mu; clients add mu/2 * ||w - w_global||^2 to their loss. */
    mu: z.number().min(0).max(100),
    ...serverSide,
  }),
  z.object({
    name: z.literal('fedadam'),
    ...adaptive(0.9),
    /** Second-moment decay beta2. @default 0.99 */
    beta2: z.number().min(0).lt(1).default(0.99),
    ...serverSide,
  }),
  z.object({
    name: z.literal('fedyogi'),
    ...adaptive(0.9),
    /** Second-moment decay beta2. @default 0.99 */
    beta2: z.number().min(0).lt(1).default(0.99),
    ...serverSide,
  }),
  z.object({
    name: z.literal('fedadagrad'),
    ...adaptive(0),
    ...serverSide,
  }),
  z.object({
    name: z.literal('fedavgm'),
    /** Server learning rate. @default 1 */
    serverLearningRate: z.number().positive().max(10).default(1),
    /** Server momentum beta (Hsu et al. 2019). @default 0.9 */
    momentum: z.number().min(0).lt(1).default(0.9),
    ...serverSide,
  }),
]);
export type StrategySpec = z.infer<typeof StrategySpecSchema>;
export type StrategyName = StrategySpec['name'];
