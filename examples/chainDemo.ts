/**
 * The demo's chain: by default a local anvil from the npm package (dev account 0 is the buyer,
 * dev account 1 the coordinator); with `--rpc-url` a real chain, keys from the environment
 * (TRIBUTARY_BUYER_KEY, TRIBUTARY_COORDINATOR_KEY; TRIBUTARY_ESCROW reuses a deployed escrow).
 * The buyer deploys (or reuses) the escrow and funds the job; after training every contributor
 * claims its payout with its own payout key and the buyer takes back the rest.
 */
import { join } from 'node:path';
import { ContractFactory, Wallet, id } from 'ethers';
import { fund } from '../client/buyer';
import { claimPayout } from '../client/claimPayout';
import { loadOrCreatePayoutKey } from '../client/keyFile';
import escrowArtifact from '../contracts/artifacts/TributaryEscrow.json';
import { EscrowClient } from '../contracts/escrow';
import { pinnedProvider, readChainId } from '../contracts/rpc';
import { anvilDevKey } from '../contracts/testing';
import type { Coordinator } from '../coordinator/server';
import type { ChainSpec } from '../shared/schemas/jobSpec';
import { startAnvil, type Anvil } from '../test/support/anvil';

export interface DemoContributor {
  id: string;
  address: string;
  score: number;
  payoutWei: string;
}

export interface DemoChainResult {
  chain: { escrow: string; budgetWei: string; paidWei: string; refundedWei: string };
  contributors: DemoContributor[];
  scoreLabel: string;
  /** Every transaction the demo caused, labelled, in order. */
  transactions: Array<{ what: string; hash: string }>;
}

export interface DemoChain {
  rpcUrl: string;
  chainId: number;
  escrow: EscrowClient;
  coordinatorKey: string;
  transactions: Array<{ what: string; hash: string }>;
  /** Creates and funds the escrow job; returns the spec's `chain` field. */
  fundJob(budget: bigint, specText: string): Promise<ChainSpec>;
  /** After the job: waits for settlement, has every contributor claim, refunds the buyer, and reports. */
  settleAndClaim(coordinator: Coordinator, jobId: string, dataDir: string, clients: number): Promise<DemoChainResult>;
  stop(): Promise<void>;
}

function requiredKey(name: string): string {
  const value = process.env[name];
  if (!value || !/^0x[0-9a-fA-F]{64}$/.test(value))
    throw new Error(`--rpc-url needs ${name} in the environment (0x followed by 64 hex digits)`);
  return value;
}

/** Starts anvil (or connects to `rpcUrl`) and deploys or reuses the escrow. */
export async function startDemoChain(rpcUrl?: string): Promise<DemoChain> {
  let anvil: Anvil | null = null;
  let buyerKey: string;
  let coordinatorKey: string;
  if (rpcUrl) {
    buyerKey = requiredKey('TRIBUTARY_BUYER_KEY');
    coordinatorKey = requiredKey('TRIBUTARY_COORDINATOR_KEY');
  } else {
    anvil = await startAnvil();
    rpcUrl = anvil.url;
    buyerKey = anvilDevKey(0);
    coordinatorKey = anvilDevKey(1);
  }
  const url = rpcUrl;
  const chainId = await readChainId(url);
  const provider = pinnedProvider(url, chainId, anvil ? 20 : 1000);
  const buyer = new Wallet(buyerKey, provider);
  const transactions: Array<{ what: string; hash: string }> = [];
  let escrow: EscrowClient;
  if (process.env.TRIBUTARY_ESCROW) {
    escrow = new EscrowClient(process.env.TRIBUTARY_ESCROW, buyer);
  } else {
    const deployed = await new ContractFactory(escrowArtifact.abi, escrowArtifact.bytecode, buyer).deploy();
    await deployed.waitForDeployment();
    escrow = new EscrowClient(await deployed.getAddress(), buyer);
    transactions.push({
      what: `buyer deploys TributaryEscrow at ${escrow.address}`,
      hash: deployed.deploymentTransaction()!.hash,
    });
  }
  let onChainJobId = 0n;

  return {
    rpcUrl: url,
    chainId,
    escrow,
    coordinatorKey,
    transactions,
    async fundJob(budget, specText) {
      // The buyer SDK's fund action: creates and funds the escrow job, answers the spec's chain field.
      const { chain, txHash } = await fund({
        escrow: escrow.address,
        wallet: buyer,
        budgetWei: budget,
        coordinatorAddress: new Wallet(coordinatorKey).address,
        specHash: id(specText),
      });
      onChainJobId = BigInt(chain.jobId);
      transactions.push({ what: `buyer funds escrow job ${chain.jobId}`, hash: txHash });
      return chain;
    },
    async settleAndClaim(coordinator, jobId, dataDir, clients) {
      const status = await coordinator.chain.whenSettled(jobId);
      if (status.settlement.status !== 'settled') {
        throw new Error(
          `the job did not settle on chain: ${status.settlement.error ?? status.lastRpcError?.message ?? status.settlement.status}`,
        );
      }
      for (const c of status.commits)
        if (c.txHash) transactions.push({ what: `coordinator commits round ${c.round}`, hash: c.txHash });
      if (status.settlement.txHash)
        transactions.push({ what: 'coordinator settles payouts', hash: status.settlement.txHash });
      const payouts = await coordinator.chain.payouts(await coordinator.jobs.getJob(jobId));
      const participants = await coordinator.store.listParticipants(jobId);
      for (let i = 0; i < clients; i++) {
        const wallet = loadOrCreatePayoutKey(join(dataDir, `client-${i}.key`));
        if (!payouts.some((p) => p.account === wallet.address)) continue;
        // The contributor pays its claim's gas: give it some (a real chain spends the buyer's ETH here).
        const gas = await buyer.sendTransaction({ to: wallet.address, value: anvil ? 10n ** 17n : 10n ** 15n });
        await gas.wait();
        const claimed = await claimPayout({ coordinator: coordinator.url, jobId, rpcUrl: url, wallet });
        if (claimed.txHash)
          transactions.push({ what: `client ${i} claims ${claimed.amountWei} wei`, hash: claimed.txHash });
      }
      // The buyer takes back budget - payout total (rounding dust included); an exact split leaves nothing.
      const settledJob = await escrow.getJob(onChainJobId);
      if (settledJob.budget - settledJob.payoutTotal - settledJob.refunded > 0n) {
        const refund = await escrow.refund(onChainJobId);
        transactions.push({ what: 'buyer takes back the rest', hash: refund.hash });
      }
      const onChain = await escrow.getJob(onChainJobId);
      const byAddress = new Map(payouts.map((p) => [p.account, p]));
      return {
        chain: {
          escrow: escrow.address,
          budgetWei: onChain.budget.toString(),
          paidWei: onChain.claimed.toString(),
          refundedWei: onChain.refunded.toString(),
        },
        contributors: participants.map((p) => {
          const payout = p.payoutAddress ? byAddress.get(p.payoutAddress) : undefined;
          return {
            id: p.clientId,
            address: p.payoutAddress ?? '',
            score: payout?.score ?? 0,
            payoutWei: payout?.amountWei ?? '0',
          };
        }),
        scoreLabel: status.settlement.scoreLabel ?? 'participation',
        transactions,
      };
    },
    async stop() {
      provider.destroy();
      await anvil?.stop();
    },
  };
}
