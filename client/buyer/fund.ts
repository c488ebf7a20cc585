import type { Signer } from 'ethers';
import { EscrowClient, NATIVE } from '../../contracts/escrow';
import type { ChainSpec } from '../../shared/schemas/jobSpec';

export type FundParameters = {
  /** The TributaryEscrow address. */
  escrow: string;
  /** The buyer's wallet, connected to the escrow's chain: it pays the budget and owns the escrow job. */
  wallet: Signer;
  /** Budget in wei (or token units). */
  budgetWei: bigint;
  /** The coordinator's Ethereum address (it commits rounds and settles). */
  coordinatorAddress: string;
  /** bytes32 the escrow records for the job: the hash of the job spec it pays for. */
  specHash: string;
  /** ERC-20 token address. @default native ETH */
  token?: string;
  /** Unix seconds by which the coordinator must settle. @default now + 1 day */
  deadline?: bigint;
  /** Seconds between settlement and the opening of claims. @default 0 */
  challengeWindow?: bigint | number;
};
export type FundReturnType = {
  /** The job spec's `chain` field for this escrow job. */
  chain: ChainSpec;
  /** Hash of the funding transaction. */
  txHash: string;
};
export type FundErrorType = Error;

/**
 * Creates and funds the escrow job on chain (contracts/escrow.ts), and returns the `chain` field the
 * job spec names it with. Fund before createJob: the coordinator recruits only once the escrow holds
 * the budget.
 * @example
 * const { chain } = await fund({ escrow, wallet: buyer, budgetWei: 10n ** 18n, coordinatorAddress, specHash });
 * const job = await createJob(client, { spec: { ...spec, chain } });
 */
export async function fund(parameters: FundParameters): Promise<FundReturnType> {
  const provider = parameters.wallet.provider;
  if (!provider) throw new Error('fund: the wallet must be connected to a provider on the escrow chain.');
  const [network, block] = await Promise.all([provider.getNetwork(), provider.getBlock('latest')]);
  const escrow = new EscrowClient(parameters.escrow, parameters.wallet);
  const { jobId, receipt } = await escrow.createJob({
    specHash: parameters.specHash,
    token: parameters.token ?? NATIVE,
    budget: parameters.budgetWei,
    coordinator: parameters.coordinatorAddress,
    deadline: parameters.deadline ?? BigInt(block?.timestamp ?? Math.floor(Date.now() / 1000)) + 86_400n,
    challengeWindow: parameters.challengeWindow ?? 0,
  });
  return {
    chain: {
      escrow: parameters.escrow,
      jobId: jobId.toString(),
      chainId: Number(network.chainId),
      budgetWei: parameters.budgetWei.toString(),
    },
    txHash: receipt.hash,
  };
}
