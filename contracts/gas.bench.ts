/** Gas of the escrow's hot paths on a real anvil node (deterministic for a given artifact). */
import { id } from 'ethers';
import { deployEscrow, deployRewardToken, NATIVE } from './escrow';
import { computePayouts } from './payouts';
import { startLocalChain } from './testing';

export interface ContractGasBench {
  /** commitRound recording a new round (the first, and a later one: lastRound already non-zero). */
  commitRoundFirst: number;
  commitRoundNext: number;
  /** An identical retried commitRound (no-op). */
  commitRoundRetry: number;
  /** claim of one leaf from a tree of `contributors` leaves (proof depth ~log2), ERC-20 and native ETH; recipient had no prior balance. */
  claimErc20: number;
  claimEth: number;
  contributors: number;
}

/** Deploys on a fresh anvil, runs one job per asset and returns the gas used. */
export async function contractGasBench(contributors = 16): Promise<ContractGasBench> {
  const chain = await startLocalChain();
  try {
    const [buyer, coordinator] = chain.signers;
    const escrow = await deployEscrow(buyer);
    const token = await deployRewardToken(buyer);
    await token.mint(buyer.address, 10n ** 24n);
    // Fresh accounts, so the first transfer to each pays the same storage cost every run.
    const accounts = Array.from(
      { length: contributors },
      (_, i) => `0x${(0xbe000 + i).toString(16).padStart(40, '0')}`,
    );
    const plan = computePayouts(
      10n ** 18n,
      accounts.map((account, i) => ({ account, score: i + 1 })),
    );
    const out: Partial<ContractGasBench> = { contributors };
    for (const asset of [token.address, NATIVE]) {
      const { jobId } = await escrow.createJob({
        specHash: id('bench'),
        token: asset,
        budget: 10n ** 18n,
        coordinator: coordinator.address,
        deadline: (await chain.now()) + 3600n,
        challengeWindow: 0,
      });
      const c = escrow.connect(coordinator);
      const first = await c.commitRound(jobId, { round: 1, modelHash: id('m1'), metric: 9000 });
      const next = await c.commitRound(jobId, { round: 2, modelHash: id('m2'), metric: 9100 });
      const retry = await c.commitRound(jobId, { round: 2, modelHash: id('m2'), metric: 9100 });
      await c.settle(jobId, plan.root, plan.total);
      // The job's second claim: job.claimed is already non-zero, as for most claims.
      await escrow.claim(jobId, plan.allocations[0]);
      const claim = await escrow.claim(jobId, plan.allocations[1]);
      out.commitRoundFirst = Number(first.receipt.gasUsed);
      out.commitRoundNext = Number(next.receipt.gasUsed);
      out.commitRoundRetry = Number(retry.receipt.gasUsed);
      if (asset === NATIVE) out.claimEth = Number(claim.gasUsed);
      else out.claimErc20 = Number(claim.gasUsed);
    }
    return out as ContractGasBench;
  } finally {
    await chain.stop();
  }
}

if (require.main === module) {
  contractGasBench().then((r) => console.log(JSON.stringify(r)));
}
