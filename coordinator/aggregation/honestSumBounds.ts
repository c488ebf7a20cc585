import { TributaryError } from '../../shared/errors';
import { describeMembers } from '../strategy/robust/partMeans';

/** What n honest clients of a private mode can put into one revealed sum; see `assertHonestSum`. */
export interface HonestSumLimits {
  /** How many clients' inputs the sum holds. */
  contributors: number;
  /** The job's maxExampleWeight W: an honest client's weight ratio is in [1/W, 1] (at least one example, at most W). */
  maxExampleWeight: number;
  /** The range every honest client clipped its delta values to before weighting (clipAndWeightUpdate). */
  clipRange: number;
  /** The largest error quantisation puts on the summed weight of `contributors` honest clients. */
  weightError: number;
  /** The largest error quantisation puts on one summed value of `contributors` honest clients. */
  valueError: number;
}

/** Who the sum belongs to, for the message and the attribution. */
export interface SumOwner {
  /** e.g. "SecAgg+ cohort 2", "the Paillier aggregate". */
  label: string;
  /** The clients to blame when the sum is refused (a cohort's members); absent: no one can be named. */
  members?: readonly string[];
}

/**
 * Refuses a revealed sum of a private mode that no set of honest clients could have produced: the
 * secure modes' half of bounded influence (issue 13), for sums the coordinator sees only as a whole.
 * `sum` is in ratio units, as the clients send it: L values Σ ratio_i·clip(Δ_i), then Σ ratio_i.
 *
 * - The summed weight Ŵ must lie in [n/W - E_w, n + E_w] and be positive: each honest ratio is at
 *   least 1/W (one example) and at most 1 (capped). A client that hides a negative ratio in its
 *   masked vector or ciphertext to cancel its peers' (issue 13's second attack) lands below.
 * - Every value must satisfy |Ŝ_j| ≤ c·(Ŵ + E_w) + E_v: honest clients clip each delta value to c
 *   before weighting, so |Σ ratio_i·Δ_ij| ≤ c·Σ ratio_i. Wrapped residues (a value pushed past the
 *   modulus, issue 13's third attack inside SecAgg+) land far outside.
 * Together they bound what passes: the sum's mean update lies within ±(c + small) per coordinate
 * however its weights were forged, so no client can buy amplification by the FedAvg division.
 *
 * Throws ROUND_AGGREGATE_INVALID (`details.members` = `owner.members` when given) and changes nothing.
 * E_w and E_v are the modes' own quantisation bounds; slacks of 2^-20 (relative) cover Float32 rounding.
 */
export function assertHonestSum(sum: ArrayLike<number>, limits: HonestSumLimits, owner: SumOwner): void {
  const { contributors: n, maxExampleWeight: W, clipRange: c, weightError, valueError } = limits;
  const length = sum.length - 1;
  if (length < 0) throw refused(owner, 'the sum has no weight element', { what: 'summedWeight' });
  const weight = sum[length];
  // Float32 rounding of each ratio (relative 2^-24) is covered by a relative slack of 2^-20.
  const lowest = Math.max(0, (n / W) * (1 - 2 ** -20) - weightError);
  const highest = n * (1 + 2 ** -20) + weightError;
  if (!(weight > 0 && weight >= lowest && weight <= highest)) {
    throw refused(
      owner,
      `its summed weight is ${weight} (in units of maxExampleWeight ${W}); ${n} honest clients sum to between ` +
        `${lowest.toPrecision(4)} and ${highest.toPrecision(4)}`,
      { what: 'summedWeight', value: weight, lowest, highest },
    );
  }
  const bound = c * (weight + weightError) + valueError + n * c * 2 ** -20;
  for (let j = 0; j < length; j++) {
    const v = sum[j];
    // NaN fails the comparison too.
    if (!(v <= bound && v >= -bound)) {
      throw refused(
        owner,
        `value ${j} of its sum is ${v}; ${n} honest clients clipped to ±${c} with summed weight ${weight.toPrecision(4)} ` +
          `reach at most ±${bound.toPrecision(4)}`,
        { what: 'summedValue', index: j, value: v, bound },
      );
    }
  }
}

/** What n honest DP clients (clipped to L2 norm C, the unclipped bit last) can put into one revealed sum. */
export interface PrivateSumLimits {
  contributors: number;
  /** The round's clipping norm C. */
  clippingNorm: number;
  /** The largest error quantisation puts on one summed value (and on the summed bits). */
  valueError: number;
}

/**
 * The DP half of `assertHonestSum`, for a revealed sum of clipped updates with the unclipped bit in
 * the weight slot (shared/aggregation/privateUpdate.ts): every honest vector has ‖clip(Δ_i)‖₂ ≤ C
 * and a bit of 0 or 1, so the sum must have L2 norm at most n·C (plus √L·E_v of quantisation) and a
 * bit count in [0, n]. A client running modified code therefore moves the sum by at most about 2·n·C
 * in L2 (its own vector up to the slack the honest ones leave), not by anything up to the ±1e6
 * guard, and cannot forge the count the adaptive clipping reads. Returns the count, rounded to the
 * integer it stands for; throws ROUND_AGGREGATE_INVALID (`details.members` = `owner.members`).
 */
export function assertPrivateSum(sum: ArrayLike<number>, limits: PrivateSumLimits, owner: SumOwner): number {
  const { contributors: n, clippingNorm: c, valueError } = limits;
  const length = sum.length - 1;
  if (length < 0) throw refused(owner, 'the sum has no unclipped-count element', { what: 'unclippedCount' });
  const count = sum[length];
  if (!(count >= -valueError && count <= n + valueError)) {
    throw refused(owner, `its unclipped count is ${count}; ${n} honest clients sum to 0..${n}`, {
      what: 'unclippedCount',
      value: count,
    });
  }
  let squares = 0;
  for (let j = 0; j < length; j++) squares += sum[j] * sum[j];
  const norm = Math.sqrt(squares);
  // Float32 rounding of each clipped value is covered by a relative slack of 2^-20.
  const bound = n * c * (1 + 2 ** -20) + Math.sqrt(length) * valueError;
  if (!(norm <= bound)) {
    throw refused(
      owner,
      `its L2 norm is ${norm.toPrecision(4)}; ${n} honest clients clipped to norm ${c} reach at most ${bound.toPrecision(4)}`,
      { what: 'summedNorm', value: norm, bound },
    );
  }
  return Math.min(n, Math.max(0, Math.round(count)));
}

function refused(owner: SumOwner, what: string, details: Record<string, unknown>): TributaryError {
  const members = owner.members && owner.members.length > 0 ? [...owner.members] : undefined;
  const whose = members ? ` (members: ${describeMembers(members)})` : '';
  return new TributaryError(
    'ROUND_AGGREGATE_INVALID',
    `Not using ${owner.label}${whose}: ${what}, so it holds an input no honest client sends.`,
    { details: { ...details, ...(members ? { members } : {}) } },
  );
}
