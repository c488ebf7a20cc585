/**
 * Proportional payouts and their Merkle tree, in the leaf encoding `TributaryEscrow.claim` checks:
 * OpenZeppelin StandardMerkleTree leaves of `[address account, uint256 amount]` (double-hashed).
 */
import { StandardMerkleTree } from '@openzeppelin/merkle-tree';
import { getAddress, ZeroHash } from 'ethers';

/** One contributor's score; only ratios matter. */
export interface ContributorScore {
  account: string;
  /** A non-negative bigint, or a finite non-negative number (scaled by `SCORE_SCALE` and floored). */
  score: bigint | number;
}

export interface Allocation {
  /** Checksummed address. */
  account: string;
  amount: bigint;
  /** Proof for `TributaryEscrow.claim(jobId, account, amount, proof)`. */
  proof: string[];
}

export interface PayoutPlan {
  /** Merkle root to pass to `settle` (ZeroHash when nobody gets anything). */
  root: string;
  /** Sum of all allocations: the `payoutTotal` to pass to `settle`. */
  total: bigint;
  /** pool - total: left by integer division; it stays in the escrow and goes back to the buyer with the refund. */
  dust: bigint;
  /** Contributors with a positive amount, in input order. Contributors rounded down to 0 get no leaf. */
  allocations: Allocation[];
  /** The tree itself (`tree.dump()` serialises it for contributors). Undefined when `allocations` is empty. */
  tree?: StandardMerkleTree<[string, bigint]>;
}

/** Leaf encoding shared with the contract. */
export const LEAF_ENCODING = ['address', 'uint256'] as const;

/** Number scores are multiplied by this and floored to integer weights. */
export const SCORE_SCALE = 1_000_000_000;

function weight(s: ContributorScore): bigint {
  if (typeof s.score === 'bigint') {
    if (s.score < 0n) throw new RangeError(`score of ${s.account} must be >= 0, got ${s.score}`);
    return s.score;
  }
  if (!Number.isFinite(s.score) || s.score < 0) {
    throw new RangeError(`score of ${s.account} must be a finite number >= 0, got ${s.score}`);
  }
  const scaled = Math.floor(s.score * SCORE_SCALE);
  if (!Number.isSafeInteger(scaled)) {
    throw new RangeError(`score of ${s.account} is too large for a number (${s.score}); pass a bigint`);
  }
  return BigInt(scaled);
}

/**
 * Splits `pool` in proportion to the scores: `amount_i = floor(pool * w_i / sum(w))`.
 * The rounding dust (`pool - total`, less than the number of contributors) is not paid to anyone:
 * it stays with the buyer's refund. All-zero scores pay nothing (`total` 0, the whole pool is dust).
 *
 * @example
 * const plan = computePayouts(1000n, [{ account: a, score: 2 }, { account: b, score: 1 }]);
 * // plan.allocations: a 666n, b 333n; plan.total 999n; plan.dust 1n
 * await escrow.settle(jobId, plan.root, plan.total);
 */
export function computePayouts(pool: bigint, scores: readonly ContributorScore[]): PayoutPlan {
  if (pool < 0n) throw new RangeError(`pool must be >= 0, got ${pool}`);
  const seen = new Set<string>();
  const weighted = scores.map((s) => {
    const account = getAddress(s.account);
    if (seen.has(account)) throw new Error(`duplicate contributor ${account}: merge its scores first`);
    seen.add(account);
    return { account, w: weight(s) };
  });
  const sum = weighted.reduce((acc, x) => acc + x.w, 0n);
  const entries: [string, bigint][] =
    sum === 0n
      ? []
      : weighted.map((x) => [x.account, (pool * x.w) / sum] as [string, bigint]).filter(([, a]) => a > 0n);
  const total = entries.reduce((acc, [, a]) => acc + a, 0n);
  if (entries.length === 0) return { root: ZeroHash, total: 0n, dust: pool, allocations: [] };

  const tree = StandardMerkleTree.of(entries, [...LEAF_ENCODING]);
  const allocations = entries.map(([account, amount], i) => ({ account, amount, proof: tree.getProof(i) }));
  return { root: tree.root, total, dust: pool - total, allocations, tree };
}
