import { createRng, shuffleInPlace } from '../../shared/data/random';

/**
 * Shapley values of a cooperative game over n players, where `utility(coalition)` is what a
 * coalition achieves (for contribution scoring: the validation metric of the model rebuilt from the
 * coalition's aggregated updates). Coalitions are sorted arrays of player indices; every utility is
 * computed at most once per call (results are cached), and calls are counted, since each one is a
 * model evaluation.
 */
export type Utility = (coalition: readonly number[]) => Promise<number>;

export interface ShapleyResult {
  values: number[];
  /** Distinct utility evaluations used (the expensive part). */
  evaluations: number;
  /** Utility of the empty and of the grand coalition. */
  emptyUtility: number;
  fullUtility: number;
  /** GTG only: permutations sampled, and whether the round was truncated as a whole. */
  permutations?: number;
  truncatedRound?: boolean;
}

class CachedUtility {
  private readonly cache = new Map<string, Promise<number>>();
  evaluations = 0;

  constructor(private readonly utility: Utility) {}

  of(coalition: readonly number[]): Promise<number> {
    const sorted = [...coalition].sort((a, b) => a - b);
    const key = sorted.join(',');
    let value = this.cache.get(key);
    if (!value) {
      this.evaluations++;
      value = this.utility(sorted);
      this.cache.set(key, value);
    }
    return value;
  }
}

/** Exact Shapley values by enumerating all 2^n coalitions: use for n <= 8 (256 evaluations). */
export async function exactShapley(n: number, utility: Utility): Promise<ShapleyResult> {
  if (!Number.isInteger(n) || n < 1 || n > 16)
    throw new RangeError(`exact Shapley needs 1 <= n <= 16 players, got ${n}`);
  const u = new CachedUtility(utility);
  const members = (mask: number) => Array.from({ length: n }, (_, i) => i).filter((i) => mask & (1 << i));
  const value = new Float64Array(1 << n);
  for (let mask = 0; mask < 1 << n; mask++) value[mask] = await u.of(members(mask));
  // weight(|S|) = |S|! (n - |S| - 1)! / n!
  const factorial = [1];
  for (let i = 1; i <= n; i++) factorial[i] = factorial[i - 1] * i;
  const values = new Array<number>(n).fill(0);
  for (let mask = 0; mask < 1 << n; mask++) {
    const size = members(mask).length;
    for (let i = 0; i < n; i++) {
      if (mask & (1 << i)) continue;
      const weight = (factorial[size] * factorial[n - size - 1]) / factorial[n];
      values[i] += weight * (value[mask | (1 << i)] - value[mask]);
    }
  }
  return { values, evaluations: u.evaluations, emptyUtility: value[0], fullUtility: value[(1 << n) - 1] };
}

export interface GtgOptions {
  /** Skip the whole round if |u(N) - u(∅)| is below this (between-round truncation). @default 1e-4 */
  roundTruncation?: number;
  /** Stop a permutation's scan once the running utility is this close to u(N) (within-round truncation). @default 1e-3 */
  withinTruncation?: number;
  /** At most this many permutations. @default 50 * n */
  maxPermutations?: number;
  /** At most this many distinct utility evaluations. @default 2000 */
  maxEvaluations?: number;
  /** Converged when the mean relative change of the estimates over the last n permutations is below this. @default 0.05 */
  convergence?: number;
  seed?: number;
}

/**
 * GTG-Shapley (Liu et al., "GTG-Shapley: Efficient and Accurate Participant Contribution Evaluation
 * in Federated Learning", ACM TIST 2022): Monte Carlo over permutations with
 *  - between-round truncation: a round whose aggregate barely changes the utility scores everyone 0;
 *  - within-round truncation: once a permutation's prefix is within `withinTruncation` of u(N), the
 *    remaining players' marginals are taken as 0 without evaluating;
 *  - guided sampling: permutation k puts player (k mod n) first, so every player is seen leading a
 *    permutation equally often (the paper's guided sampling of the first position);
 *  - a cap on permutations and evaluations, and a convergence test on the running estimates.
 */
export async function gtgShapley(n: number, utility: Utility, options: GtgOptions = {}): Promise<ShapleyResult> {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`GTG-Shapley needs n >= 1 players, got ${n}`);
  const roundTruncation = options.roundTruncation ?? 1e-4;
  const withinTruncation = options.withinTruncation ?? 1e-3;
  const maxPermutations = options.maxPermutations ?? 50 * n;
  const maxEvaluations = options.maxEvaluations ?? 2000;
  const convergence = options.convergence ?? 0.05;
  const rng = createRng(options.seed ?? 0);
  const u = new CachedUtility(utility);
  const all = Array.from({ length: n }, (_, i) => i);
  const empty = await u.of([]);
  const full = await u.of(all);
  const sums = new Float64Array(n);
  if (Math.abs(full - empty) < roundTruncation) {
    return {
      values: Array.from(sums),
      evaluations: u.evaluations,
      emptyUtility: empty,
      fullUtility: full,
      permutations: 0,
      truncatedRound: true,
    };
  }
  const history: Float64Array[] = [];
  let k = 0;
  for (; k < maxPermutations && u.evaluations < maxEvaluations; k++) {
    const lead = k % n;
    const rest = shuffleInPlace(
      all.filter((i) => i !== lead),
      rng,
    );
    const permutation = [lead, ...rest];
    let previous = empty;
    for (let j = 0; j < n; j++) {
      const current = Math.abs(full - previous) < withinTruncation ? previous : await u.of(permutation.slice(0, j + 1));
      sums[permutation[j]] += current - previous;
      previous = current;
    }
    history.push(Float64Array.from(sums, (s) => s / (k + 1)));
    if (k + 1 >= 2 * n && converged(history, n, convergence)) {
      k++;
      break;
    }
  }
  return {
    values: Array.from(sums, (s) => s / Math.max(1, k)),
    evaluations: u.evaluations,
    emptyUtility: empty,
    fullUtility: full,
    permutations: k,
    truncatedRound: false,
  };
}

/** Mean relative change of the estimates between now and n permutations ago. */
function converged(history: Float64Array[], n: number, tolerance: number): boolean {
  const now = history[history.length - 1];
  const before = history[history.length - 1 - n];
  let total = 0;
  for (let i = 0; i < now.length; i++) total += Math.abs(now[i] - before[i]) / Math.max(Math.abs(now[i]), 1e-12);
  return total / now.length < tolerance;
}

/** Spearman rank correlation (average ranks for ties): how well two scorings agree on the order. */
export function spearman(a: readonly number[], b: readonly number[]): number {
  if (a.length !== b.length || a.length < 2)
    throw new RangeError('spearman needs two equal-length lists of at least 2 values');
  const ranks = (xs: readonly number[]) => {
    const order = xs.map((x, i) => [x, i] as const).sort((p, q) => p[0] - q[0]);
    const r = new Array<number>(xs.length);
    for (let i = 0; i < order.length; ) {
      let j = i;
      while (j + 1 < order.length && order[j + 1][0] === order[i][0]) j++;
      for (let k = i; k <= j; k++) r[order[k][1]] = (i + j) / 2 + 1;
      i = j + 1;
    }
    return r;
  };
  const ra = ranks(a);
  const rb = ranks(b);
  const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;
  const ma = mean(ra);
  const mb = mean(rb);
  let cov = 0;
  let va = 0;
  let vb = 0;
  for (let i = 0; i < ra.length; i++) {
    cov += (ra[i] - ma) * (rb[i] - mb);
    va += (ra[i] - ma) ** 2;
    vb += (rb[i] - mb) ** 2;
  }
  return va === 0 || vb === 0 ? 0 : cov / Math.sqrt(va * vb);
}
