import { z } from 'zod';
import { TributaryError } from '../errors';
import { type EpsilonAtOrder, epsilonFromRdp } from './rdpConversion';
import { subsampledGaussianRdp } from './subsampledGaussianRdp';

/**
 * The RDP orders every accountant tracks, as in TF Privacy's tutorials and Google's dp_accounting:
 * 1.1 to 10.9 in steps of 0.1, every integer from 11 to 63, and 128, 256, 512. Small orders matter
 * for large epsilon and few rounds, large ones for small epsilon and many rounds.
 */
export const DEFAULT_RDP_ORDERS: readonly number[] = Object.freeze([
  ...Array.from({ length: 99 }, (_, i) => Math.round((1.1 + i / 10) * 10) / 10),
  ...Array.from({ length: 53 }, (_, i) => 11 + i),
  128,
  256,
  512,
]);

/** Noise multipliers above this are refused: the model would learn nothing. */
export const MAX_NOISE_MULTIPLIER = 10_000;

/** The largest RDP value we store: JSON has no Infinity, and any value this large means epsilon = Infinity. */
const RDP_CAP = Number.MAX_VALUE;

/**
 * What a job persists after every round so that a resumed job continues from the budget it spent:
 * the orders, the RDP accumulated at each, and how many rounds were composed.
 */
export const RdpAccountantStateSchema = z
  .object({
    orders: z.array(z.number().gt(1).finite()).min(1).max(1_000),
    rdp: z.array(z.number().min(0).finite()).min(1).max(1_000),
    rounds: z.number().int().min(0).max(1_000_000_000),
  })
  .strict()
  .refine((s) => s.orders.length === s.rdp.length, {
    message: 'orders and rdp must have the same length',
    path: ['rdp'],
  });
export type RdpAccountantState = z.infer<typeof RdpAccountantStateSchema>;

/**
 * The per-round RDP of the sampled Gaussian mechanism at every order. A Rényi divergence is never
 * negative: at tiny sampling rates and large noise the series cancels to about -1e-18 in floating
 * point, which is read as 0 (the largest population a spec allows, q = 1e-7, hit it at z = 1000).
 */
export function rdpCurve(q: number, noiseMultiplier: number, orders: readonly number[]): number[] {
  return orders.map((order) => Math.max(0, Math.min(subsampledGaussianRdp(q, noiseMultiplier, order), RDP_CAP)));
}

/**
 * A Rényi-DP accountant for rounds of the sampled Gaussian mechanism (client-level DP-FedAvg: each
 * client takes part with probability q, its clipped update has L2 sensitivity C, the sum gets
 * N(0, (z C)^2) noise per coordinate).
 *
 * RDP composes by addition at every order (Mironov 2017, Prop. 1), so the state is one number per
 * order; `epsilon(delta)` converts the sum with the improved bound (see `epsilonFromRdp`). The state
 * is plain JSON (`toState` / `fromState`), so a job that is resumed continues from the budget it has
 * spent. Sampling is assumed to be Poisson with rate q, as in TF Privacy, Opacus and DP-FedAvg
 * (McMahan et al. 2018); fixed-size sampling of m of N clients is accounted with q = m / N.
 */
export class RdpAccountant {
  private readonly orders: readonly number[];
  private readonly rdp: number[];
  private composed: number;

  constructor(orders: readonly number[] = DEFAULT_RDP_ORDERS) {
    if (orders.length === 0 || orders.some((a) => !(a > 1 && Number.isFinite(a)))) {
      throw new TributaryError('CONFIG_INVALID', 'RDP orders must be finite numbers > 1, at least one');
    }
    this.orders = Object.freeze([...orders]);
    this.rdp = orders.map(() => 0);
    this.composed = 0;
  }

  /** Restores an accountant from `toState()` output (read from a store: validated). */
  static fromState(state: unknown): RdpAccountant {
    const parsed = RdpAccountantStateSchema.safeParse(state);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new TributaryError(
        'VALIDATION_FAILED',
        `the stored privacy accountant state is invalid at ${issue.path.join('.') || '(root)'}: ${issue.message}`,
      );
    }
    const accountant = new RdpAccountant(parsed.data.orders);
    parsed.data.rdp.forEach((r, i) => {
      accountant.rdp[i] = r;
    });
    accountant.composed = parsed.data.rounds;
    return accountant;
  }

  /** A JSON-safe copy of the state. */
  toState(): RdpAccountantState {
    return { orders: [...this.orders], rdp: [...this.rdp], rounds: this.composed };
  }

  /** Rounds composed so far. */
  get rounds(): number {
    return this.composed;
  }

  /** Composes `count` rounds of the sampled Gaussian mechanism with sampling rate q and noise multiplier z. */
  step(q: number, noiseMultiplier: number, count = 1): this {
    if (!(Number.isInteger(count) && count >= 0)) {
      throw new TributaryError('CONFIG_INVALID', `count must be a non-negative integer, got ${count}`);
    }
    const perRound = rdpCurve(q, noiseMultiplier, this.orders);
    for (let i = 0; i < perRound.length; i++) this.rdp[i] = Math.min(this.rdp[i] + count * perRound[i], RDP_CAP);
    this.composed += count;
    return this;
  }

  /** The epsilon spent so far at this delta. */
  epsilon(delta: number): number {
    return this.epsilonAtOrder(delta).epsilon;
  }

  /** The epsilon spent so far at this delta, and the order that gives it. */
  epsilonAtOrder(delta: number): EpsilonAtOrder {
    return epsilonFromRdp(this.orders, this.rdp, delta);
  }

  /**
   * How many more rounds at (q, z) keep the total epsilon at `delta` within `epsilonBudget`, counting
   * what was already spent: 0 when the next round would exceed it. Infinity when a round costs nothing (q = 0).
   */
  roundsWithin(epsilonBudget: number, delta: number, q: number, noiseMultiplier: number): number {
    const perRound = rdpCurve(q, noiseMultiplier, this.orders);
    if (perRound.every((r) => r === 0)) return Infinity;
    const fits = (k: number) =>
      epsilonFromRdp(
        this.orders,
        this.rdp.map((r, i) => Math.min(r + k * perRound[i], RDP_CAP)),
        delta,
      ).epsilon <= epsilonBudget;
    if (!fits(1)) return 0;
    let lo = 1;
    let hi = 2;
    while (fits(hi)) {
      lo = hi;
      hi *= 2;
      if (hi > 2 ** 40) return Infinity;
    }
    // fits(lo) and not fits(hi): epsilon grows with k, so bisect.
    while (hi - lo > 1) {
      const mid = Math.floor((lo + hi) / 2);
      if (fits(mid)) lo = mid;
      else hi = mid;
    }
    return lo;
  }
}

/**
 * The smallest noise multiplier z (within 0.01 %) such that `rounds` rounds of the sampled Gaussian
 * mechanism at rate q stay within (epsilon, delta), by bisection (epsilon falls as z grows).
 * Throws PRIVACY_BUDGET_UNREACHABLE when even z = MAX_NOISE_MULTIPLIER spends more.
 */
export function noiseFor(
  epsilon: number,
  delta: number,
  q: number,
  rounds: number,
  orders: readonly number[] = DEFAULT_RDP_ORDERS,
): number {
  if (!(epsilon > 0 && Number.isFinite(epsilon))) {
    throw new TributaryError('CONFIG_INVALID', `epsilon must be a positive finite number, got ${epsilon}`);
  }
  if (!(Number.isInteger(rounds) && rounds >= 1)) {
    throw new TributaryError('CONFIG_INVALID', `rounds must be a positive integer, got ${rounds}`);
  }
  const spent = (z: number) =>
    epsilonFromRdp(
      orders,
      rdpCurve(q, z, orders).map((r) => r * rounds),
      delta,
    ).epsilon;
  if (spent(MAX_NOISE_MULTIPLIER) > epsilon) {
    throw new TributaryError(
      'PRIVACY_BUDGET_UNREACHABLE',
      `epsilon ${epsilon} at delta ${delta} cannot cover ${rounds} rounds at sampling rate ${q}: even noise multiplier ${MAX_NOISE_MULTIPLIER} spends ${spent(MAX_NOISE_MULTIPLIER).toPrecision(3)}`,
      { details: { epsilon, delta, rounds, samplingRate: q } },
    );
  }
  let hi = 1;
  while (spent(hi) > epsilon) hi *= 2;
  let lo = hi / 2;
  if (spent(lo) <= epsilon) {
    // Walk down until the lower end overspends (z can be tiny for large budgets).
    while (lo > 1e-6 && spent(lo) <= epsilon) {
      hi = lo;
      lo /= 2;
    }
  }
  // Invariant: spent(hi) <= epsilon < spent(lo).
  while (hi - lo > hi * 1e-4) {
    const mid = (lo + hi) / 2;
    if (spent(mid) <= epsilon) hi = mid;
    else lo = mid;
  }
  return hi;
}
