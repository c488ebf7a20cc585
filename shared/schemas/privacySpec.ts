import { z } from 'zod';
import { TributaryError } from '../errors';
import {
  ADAPTIVE_CLIPPING_DEFAULTS,
  defaultCountNoiseStddev,
  updateNoiseMultiplier,
} from '../privacy/adaptiveClipping';
import { planDistributedNoise } from '../privacy/distributedNoise';
import { MAX_NOISE_MULTIPLIER, noiseFor, RdpAccountant } from '../privacy/rdpAccountant';

/** Adaptive clipping (Andrew et al. 2021): C follows the `targetQuantile` of the update norms. */
export const AdaptiveClippingSpecSchema = z
  .object({
    /** Fraction of updates that should stay unclipped. @default 0.5 */
    targetQuantile: z.number().gt(0).lt(1).default(ADAPTIVE_CLIPPING_DEFAULTS.targetQuantile),
    /** Geometric learning rate of the clipping norm. @default 0.2 */
    learningRate: z.number().gt(0).max(10).default(ADAPTIVE_CLIPPING_DEFAULTS.learningRate),
    /** The clipping norm of round 1. @default 0.1 */
    initialNorm: z.number().gt(0).max(1e6).default(ADAPTIVE_CLIPPING_DEFAULTS.initialNorm),
  })
  .strict();
export type AdaptiveClippingSpec = z.infer<typeof AdaptiveClippingSpecSchema>;

/** Where the noise is added: by the coordinator to the sum, or by each client inside SecAgg+. */
export const PrivacyNoiseSchema = z.enum(['central', 'distributed']);
export type PrivacyNoise = z.infer<typeof PrivacyNoiseSchema>;

/**
 * The job spec's optional `privacy` block: client-level differential privacy (DP-FedAvg, McMahan et
 * al. 2018) with a Rényi-DP accountant. Absent = no DP. Exactly one of `clippingNorm` and
 * `adaptiveClipping`. See docs/privacy.md.
 */
export const PrivacySpecSchema = z
  .object({
    /** The total epsilon the job may spend; it stops before a round would exceed it. */
    epsilon: z.number().gt(0).max(100),
    /** @default 1 / population^1.1 */
    delta: z.number().gt(0).lt(1).optional(),
    /** N: how many distinct clients are expected to take part (the population rounds sample from). @default maxClients */
    population: z.number().int().min(1).max(1_000_000_000).optional(),
    /** A fixed L2 clipping norm C for every update. */
    clippingNorm: z.number().gt(0).max(1e6).optional(),
    /** Adaptive clipping instead of a fixed norm. */
    adaptiveClipping: AdaptiveClippingSpecSchema.optional(),
    /** z: noise standard deviation / C (the accountant's noise multiplier). @default derived from epsilon, delta and rounds */
    noiseMultiplier: z.number().gt(0).max(MAX_NOISE_MULTIPLIER).optional(),
    /** sigma_b: noise on the count of unclipped updates. @default max(clients per round / 20, 5 z) */
    clippedCountNoise: z.number().gt(0).max(1e6).optional(),
    /** Where the noise is added. @default "central" */
    noise: PrivacyNoiseSchema.default('central'),
  })
  .strict()
  .refine((p) => (p.clippingNorm === undefined) !== (p.adaptiveClipping === undefined), {
    message: 'give exactly one of clippingNorm (a fixed norm) and adaptiveClipping',
    path: ['clippingNorm'],
  });
export type PrivacySpec = z.infer<typeof PrivacySpecSchema>;
export type PrivacySpecInput = z.input<typeof PrivacySpecSchema>;

/** The parts of a job spec the privacy plan depends on (a parsed JobSpec has them all). */
export interface PrivacyJobContext {
  rounds: number;
  minClients: number;
  maxClients: number;
  fractionFit: number;
  secureAggregation: 'none' | 'secagg' | 'paillier';
  secagg?: { cohortSize?: number };
  privacy?: unknown;
}

/** Everything the runner needs to run a DP job, resolved once at job creation and stored with it. */
export interface PrivacyPlan {
  epsilon: number;
  delta: number;
  noise: PrivacyNoise;
  /** N, the population the sampling rate is planned against. */
  population: number;
  /** m, the clients expected per round: clamp(ceil(fractionFit N), minClients, maxClients). */
  expectedClientsPerRound: number;
  /** q = m / N, the planned sampling rate (the runner steps the accountant with each round's real rate). */
  samplingRate: number;
  /** z, the noise multiplier the accountant is stepped with (updates and clipped count together). */
  noiseMultiplier: number;
  /** Whether z came from the spec or was derived from the budget and the rounds. */
  noiseMultiplierSource: 'spec' | 'derived';
  /** z_Delta = (z^-2 - (2 sigma_b)^-2)^(-1/2): the update sum's noise is N(0, (z_Delta C)^2) per coordinate. */
  updateNoiseMultiplier: number;
  /** sigma_b: the noise standard deviation on the count of unclipped updates. */
  clippedCountNoise: number;
  clipping: { mode: 'fixed'; norm: number } | ({ mode: 'adaptive' } & AdaptiveClippingSpec);
  /** Rounds the budget covers at the planned rate; when fewer than `rounds`, the job stops early. */
  plannedRounds: number;
  /** n_min: the fewest clients a revealed sum holds (distributed noise is sized for it): cohortSize or minClients. */
  minContributors: number;
  /** n_max: the most clients a sum holds (maxClients). */
  maxContributors: number;
}

/** The default delta for a population of N clients: 1 / N^1.1, so that delta is well below 1 / N. */
export function defaultDelta(population: number): number {
  return 1 / population ** 1.1;
}

function invalid(path: string, message: string): TributaryError {
  return new TributaryError('JOB_SPEC_INVALID', `privacy.${path}: ${message}`, {
    details: { path: `privacy.${path}` },
  });
}

/**
 * Checks a job's `privacy` block against the rest of the spec and resolves it into a `PrivacyPlan`
 * (undefined when the job has no privacy block). Call it at job creation, after the job spec parsed,
 * and store the plan with the job. Refuses with:
 * - JOB_SPEC_INVALID: a malformed block (zero or negative norms, epsilon, noise), a population below
 *   minClients, delta >= 1 / population, `noise: "distributed"` without `secureAggregation: "secagg"`,
 *   or (given `modelParameters`) a model whose distributed noise does not fit the 32-bit group;
 * - PRIVACY_BUDGET_UNREACHABLE: epsilon too small for even one round at the given noise multiplier
 *   (or for the planned rounds at any noise multiplier up to 10,000), or a clipped-count noise that
 *   alone spends the budget.
 *
 * Weighting: under DP every client's clipped update counts once (uniform weights, DP-FedAvg): an
 * example-count weight would let one client's influence, and so the sensitivity, grow without bound.
 */
export function assertPrivacyUsable(
  spec: PrivacyJobContext,
  options: { modelParameters?: number } = {},
): PrivacyPlan | undefined {
  if (spec.privacy === undefined) return undefined;
  const parsed = PrivacySpecSchema.safeParse(spec.privacy);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw invalid(issue.path.map(String).join('.') || '(block)', issue.message);
  }
  const p = parsed.data;
  const population = p.population ?? spec.maxClients;
  if (population < spec.minClients) {
    throw invalid('population', `expected at least minClients (${spec.minClients}) clients, got ${population}`);
  }
  const delta = p.delta ?? defaultDelta(population);
  if (delta >= 1 / population) {
    throw invalid('delta', `expected delta below 1 / population = ${1 / population}, got ${delta}`);
  }
  if (p.noise === 'distributed' && spec.secureAggregation !== 'secagg') {
    throw invalid(
      'noise',
      `"distributed" noise is added inside SecAgg+ sums and needs secureAggregation "secagg", got "${spec.secureAggregation}"`,
    );
  }
  const expectedClientsPerRound = Math.min(
    spec.maxClients,
    population,
    Math.max(spec.minClients, Math.ceil(spec.fractionFit * population)),
  );
  const samplingRate = expectedClientsPerRound / population;

  let noiseMultiplier: number;
  let noiseMultiplierSource: PrivacyPlan['noiseMultiplierSource'];
  if (p.noiseMultiplier !== undefined) {
    noiseMultiplier = p.noiseMultiplier;
    noiseMultiplierSource = 'spec';
    const oneRound = new RdpAccountant().step(samplingRate, noiseMultiplier).epsilon(delta);
    if (oneRound > p.epsilon) {
      throw new TributaryError(
        'PRIVACY_BUDGET_UNREACHABLE',
        `privacy.epsilon: one round at noiseMultiplier ${noiseMultiplier} and sampling rate ${samplingRate.toPrecision(3)} spends epsilon ${oneRound.toPrecision(3)} (delta ${delta.toPrecision(3)}), more than the budget ${p.epsilon}; raise epsilon or noiseMultiplier`,
        { details: { epsilonPerRound: oneRound, epsilon: p.epsilon, delta, samplingRate } },
      );
    }
  } else {
    noiseMultiplier = noiseFor(p.epsilon, delta, samplingRate, spec.rounds);
    noiseMultiplierSource = 'derived';
  }
  const clippedCountNoise = p.clippedCountNoise ?? defaultCountNoiseStddev(expectedClientsPerRound, noiseMultiplier);
  const updateMultiplier = updateNoiseMultiplier(noiseMultiplier, clippedCountNoise);
  const plannedRounds = new RdpAccountant().roundsWithin(p.epsilon, delta, samplingRate, noiseMultiplier);
  const minContributors = spec.secagg?.cohortSize ?? spec.minClients;
  const clipping: PrivacyPlan['clipping'] =
    p.adaptiveClipping !== undefined
      ? { mode: 'adaptive', ...p.adaptiveClipping }
      : { mode: 'fixed', norm: p.clippingNorm as number };

  if (p.noise === 'distributed' && options.modelParameters !== undefined) {
    try {
      planDistributedNoise({
        dimension: options.modelParameters,
        clipNorm: clipping.mode === 'fixed' ? clipping.norm : clipping.initialNorm,
        noiseMultiplier: updateMultiplier,
        minContributors,
        maxContributors: spec.maxClients,
        countNoiseStddev: clippedCountNoise,
      });
    } catch (err) {
      throw invalid('noise', (err as Error).message);
    }
  }
  return {
    epsilon: p.epsilon,
    delta,
    noise: p.noise,
    population,
    expectedClientsPerRound,
    samplingRate,
    noiseMultiplier,
    noiseMultiplierSource,
    updateNoiseMultiplier: updateMultiplier,
    clippedCountNoise,
    clipping,
    plannedRounds,
    minContributors,
    maxContributors: spec.maxClients,
  };
}
