import type { Signer } from 'ethers';
import { EscrowClient, NATIVE } from '../../contracts/escrow';
import { bindJobToEscrow, type UnboundJobSpecInput } from '../../contracts/escrowBinding';
import type { ChainSpec, JobSpecInput } from '../../shared/schemas/jobSpec';

export type FundParameters = {
  /** The TributaryEscrow address. */
  escrow: string;
  /** The buyer's wallet, connected to the escrow's chain: it pays the budget, owns the escrow job and signs the binding. */
  wallet: Signer;
  /** The job spec the escrow pays for, without `chain` (its canonical hash goes on chain). */
  spec: UnboundJobSpecInput;
  /** Budget in wei (or token units). */
  budgetWei: bigint;
  /** The coordinator's Ethereum address (it commits rounds and settles; GET /v1/health names it). */
  coordinatorAddress: string;
  /** Who may resolve a dispute of the posted payouts (see docs/paid-jobs.md). */
  arbiter: string;
  /** ERC-20 token address. @default native ETH */
  token?: string;
  /** Unix seconds by which the coordinator must settle. @default now + 1 day */
  deadline?: bigint;
  /** Seconds between settlement and the opening of claims (the dispute window). @default 0 */
  challengeWindow?: bigint | number;
};
export type FundReturnType = {
  /** The spec to post with createJob: `chain` names the escrow job and carries the buyer's signature. */
  spec: JobSpecInput & { chain: ChainSpec };
  /** The job spec's `chain` field for this escrow job. */
  chain: ChainSpec;
  /** Hash of the funding transaction. */
  txHash: string;
};
export type FundErrorType = Error;

/**
 * Creates and funds the escrow job on chain for exactly this spec (its canonical hash), and signs the
 * EIP-712 binding the coordinator checks (contracts/escrowBinding.ts): the returned spec is what to
 * post. Fund before createJob: the coordinator refuses a chain job whose escrow job does not exist
 * and recruits only once the escrow holds the budget.
 * @example
 * const { spec: paid } = await fund({ escrow, wallet: buyer, spec, budgetWei: 10n ** 18n, coordinatorAddress, arbiter });
 * const job = await createJob(client, { spec: paid });
 */
export async function fund(parameters: FundParameters): Promise<FundReturnType> {
  const provider = parameters.wallet.provider;
  if (!provider) throw new Error('fund: the wallet must be connected to a provider on the escrow chain.');
  const [network, block] = await Promise.all([provider.getNetwork(), provider.getBlock('latest')]);
  const bound = await bindJobToEscrow({
    escrow: new EscrowClient(parameters.escrow, parameters.wallet),
    buyer: parameters.wallet,
    spec: parameters.spec,
    chainId: Number(network.chainId),
    coordinator: parameters.coordinatorAddress,
    arbiter: parameters.arbiter,
    budget: parameters.budgetWei,
    token: parameters.token ?? NATIVE,
    deadline: parameters.deadline ?? BigInt(block?.timestamp ?? Math.floor(Date.now() / 1000)) + 86_400n,
    challengeWindow: parameters.challengeWindow ?? 0,
    budgetWei: parameters.budgetWei,
  });
  return { spec: bound.spec, chain: bound.spec.chain, txHash: bound.txHash };
}
