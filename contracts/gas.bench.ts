/** Gas of the escrow's hot paths on a real anvil node (deterministic for a given artifact). */
import { id } from 'ethers';
import { deployEscrow, deployRewardToken, NATIVE } from './escrow';
import { computePayouts } from './payouts';
import { startLocalChain } from './testing';

export interface ContractGasBench {
  /** createJob of an ERC-20 job (approval not counted) and of a native-ETH job. */
  createJobErc20: number;
  createJobEth: number;
  /** commitRound recording a new round (the first, and a later one: lastRound already non-zero), with a transcript hash. */
  commitRoundFirst: number;
  commitRoundNext: number;
  /** An identical retried commitRound (no-op). */
  commitRoundRetry: number;
  settle: number;
  /** claim of one leaf from a tree of `contributors` leaves (proof depth ~log2), ERC-20 and native ETH; recipient had no prior balance. */
  claimErc20: number;
  claimEth: number;
  /** The dispute path (ERC-20 job): raise, the arbiter's corrected root, or the unanswered dispute's expiry. */
  dispute: number;
  resolveDispute: number;
  expireDispute: number;
  /** A claim after an expired dispute (pays the leaf less the haircut). */
  claimAfterHaircut: number;
  /** The buyer's sweep of unclaimed allocations after the claim period (ERC-20). */
  sweep: number;
  contributors: number;
}

/** Deploys on a fresh anvil, runs one job per asset plus two disputed jobs, and returns the gas used. */
export async function contractGasBench(contributors = 16): Promise<ContractGasBench> {
  const chain = await startLocalChain();
  try {
    const [buyer, coordinator, arbiter] = chain.signers;
    const escrow = await deployEscrow(buyer);
    const token = await deployRewardToken(buyer);
    await token.mint(buyer.address, 10n ** 24n);
    // Fresh accounts, so the first transfer to each pays the same storage cost every run (the
    // disputed jobs pay a second set, so their claims compare with the plain ones).
    const planFrom = (base: number) =>
      computePayouts(
        10n ** 18n,
        Array.from({ length: contributors }, (_, i) => ({
          account: `0x${(base + i).toString(16).padStart(40, '0')}`,
          score: i + 1,
        })),
      );
    const plan = planFrom(0xbe000);
    const disputedPlan = planFrom(0xbf000);
    const out: Partial<ContractGasBench> = { contributors };
    const c = escrow.connect(coordinator);
    const newJob = async (asset: string, challengeWindow = 0) => {
      if (asset !== NATIVE) await token.approve(escrow.address, 10n ** 18n);
      return escrow.createJob({
        specHash: id('bench'),
        token: asset,
        budget: 10n ** 18n,
        coordinator: coordinator.address,
        arbiter: arbiter.address,
        deadline: (await chain.now()) + 3600n,
        challengeWindow,
        approve: false,
      });
    };
    const settledJob = async (challengeWindow: number) => {
      const { jobId } = await newJob(token.address, challengeWindow);
      await c.commitRound(jobId, { round: 1, modelHash: id('m1'), metric: 9000, transcriptHash: id('t1') });
      await c.settle(jobId, disputedPlan.root, disputedPlan.total);
      return jobId;
    };
    for (const asset of [token.address, NATIVE]) {
      const { jobId, receipt: created } = await newJob(asset);
      const first = await c.commitRound(jobId, {
        round: 1,
        modelHash: id('m1'),
        metric: 9000,
        transcriptHash: id('t1'),
      });
      const next = await c.commitRound(jobId, {
        round: 2,
        modelHash: id('m2'),
        metric: 9100,
        transcriptHash: id('t2'),
      });
      const retry = await c.commitRound(jobId, {
        round: 2,
        modelHash: id('m2'),
        metric: 9100,
        transcriptHash: id('t2'),
      });
      const settled = await c.settle(jobId, plan.root, plan.total);
      // The job's second claim: job.claimed is already non-zero, as for most claims.
      await escrow.claim(jobId, plan.allocations[0]);
      const claim = await escrow.claim(jobId, plan.allocations[1]);
      out.commitRoundFirst = Number(first.receipt.gasUsed);
      out.commitRoundNext = Number(next.receipt.gasUsed);
      out.commitRoundRetry = Number(retry.receipt.gasUsed);
      out.settle = Number(settled.gasUsed);
      if (asset === NATIVE) {
        out.claimEth = Number(claim.gasUsed);
        out.createJobEth = Number(created.gasUsed);
      } else {
        out.claimErc20 = Number(claim.gasUsed);
        out.createJobErc20 = Number(created.gasUsed);
        await chain.increaseTime(30n * 86_400n);
        out.sweep = Number((await escrow.sweep(jobId)).gasUsed);
      }
    }
    const resolved = await settledJob(600);
    out.dispute = Number((await escrow.dispute(resolved)).gasUsed);
    out.resolveDispute = Number(
      (await escrow.connect(arbiter).resolveDispute(resolved, disputedPlan.root, disputedPlan.total)).gasUsed,
    );
    const expired = await settledJob(600);
    await escrow.dispute(expired);
    await chain.increaseTime(3n * 86_400n);
    out.expireDispute = Number((await escrow.expireDispute(expired)).gasUsed);
    await escrow.claim(expired, disputedPlan.allocations[0]);
    out.claimAfterHaircut = Number((await escrow.claim(expired, disputedPlan.allocations[1])).gasUsed);
    return out as ContractGasBench;
  } finally {
    await chain.stop();
  }
}

if (require.main === module) {
  contractGasBench().then((r) => console.log(JSON.stringify(r)));
}
