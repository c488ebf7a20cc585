/**
 * A paid job on a real anvil: the buyer (anvil dev account 0) deploys the escrow, creates and funds
 * the escrow job for a spec and signs the binding; the coordinator signs with dev account 1's key
 * (derived from anvil's public test mnemonic); dev account 9 arbitrates; providers get a key file
 * with an Ed25519 identity and a payout key, bound for joining.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { JsonRpcProvider, JsonRpcSigner, Wallet } from 'ethers';
import { loadOrCreateIdentity, loadOrCreatePayoutKey } from '../../client/keyFile';
import { createPayoutBinding } from '../../client/payoutBinding';
import type { PlantedBehaviour } from '../../client/plantedBehaviour';
import { createResearchClient } from '../../client/plantedClient';
import type { TributaryClient } from '../../client/tributaryClient';
import { deployEscrow, NATIVE, type EscrowClient } from '../../contracts/escrow';
import { bindJobToEscrow, type UnboundJobSpecInput } from '../../contracts/escrowBinding';
import { pinnedProvider } from '../../contracts/rpc';
import { anvilDevKey } from '../../contracts/testing';
import type { Dataset } from '../../shared/data/dataset';
import type { ChainSpec, JobSpecInput } from '../../shared/schemas/jobSpec';

/** The private key of anvil dev account `index`. */
export const anvilKey = anvilDevKey;

export function localProvider(url: string): JsonRpcProvider {
  return pinnedProvider(url, 31337, 20);
}

/**
 * The chain options every e2e coordinator on anvil runs with: dev account 1 signs, the chain worker
 * polls every 50 ms and retries from 50 ms up to 400 ms, and gives a transaction `txTimeoutMs`
 * (the coordinator's default where omitted).
 */
export function testChainOptions(rpcUrl: string, txTimeoutMs?: number) {
  return {
    rpcUrl,
    coordinatorPrivateKey: anvilKey(1),
    chainPollMs: 50,
    chainRetryBaseMs: 50,
    chainRetryMaxMs: 400,
    ...(txTimeoutMs === undefined ? {} : { chainTxTimeoutMs: txTimeoutMs }),
  };
}

/** Deploys a fresh escrow as the buyer (dev account 0). */
export async function deployAsBuyer(
  provider: JsonRpcProvider,
): Promise<{ buyer: JsonRpcSigner; escrow: EscrowClient }> {
  const buyer = await provider.getSigner(0);
  return { buyer, escrow: await deployEscrow(buyer) };
}

/** The arbiter of test escrow jobs: anvil dev account 9 (neither the buyer nor the coordinator). */
export const ARBITER_ACCOUNT = 9;

export interface FundOptions {
  /** ERC-20 address. @default NATIVE */
  token?: string;
  /** @default 0 */
  challengeWindow?: number;
  /** The spec's `chain.budgetWei`. @default none */
  budgetWei?: bigint;
  /** Fail unless the escrow assigns this id. @default 1n */
  expectedId?: bigint;
  /** @default dev account 0 */
  buyer?: JsonRpcSigner;
}

/**
 * As the buyer: creates and funds the escrow job for `spec` (with its canonical hash) naming
 * `coordinator`, signs the binding, and returns the spec to POST (its `chain` complete).
 */
export async function fundAndBindJob(
  escrow: EscrowClient,
  provider: JsonRpcProvider,
  coordinator: string,
  spec: UnboundJobSpecInput,
  budget: bigint,
  options: FundOptions = {},
): Promise<JobSpecInput & { chain: ChainSpec }> {
  const block = await provider.getBlock('latest');
  const buyer = options.buyer ?? (await provider.getSigner(0));
  const arbiter = await provider.getSigner(ARBITER_ACCOUNT);
  const bound = await bindJobToEscrow({
    escrow,
    buyer,
    spec,
    chainId: 31337,
    coordinator,
    arbiter: arbiter.address,
    budget,
    token: options.token ?? NATIVE,
    deadline: BigInt(block!.timestamp) + 3600n,
    challengeWindow: options.challengeWindow ?? 0,
    ...(options.budgetWei !== undefined ? { budgetWei: options.budgetWei } : {}),
  });
  const expected = options.expectedId ?? 1n;
  if (bound.escrowJobId !== expected) throw new Error(`expected escrow job ${expected}, got ${bound.escrowJobId}`);
  return bound.spec;
}

export interface PaidProvider {
  client: TributaryClient;
  wallet: Wallet;
  keyFile: string;
}

/**
 * In-process providers whose key files hold a payout key; each gets 1 ETH for the gas of its claim.
 * `behaviours[i]` plants a research behaviour (client/plantedBehaviour.ts) in provider i.
 */
export async function paidProviders(
  url: string,
  jobId: string,
  datasets: Dataset[],
  gasFrom: JsonRpcSigner,
  behaviours: Array<PlantedBehaviour | undefined> = [],
): Promise<PaidProvider[]> {
  const dir = mkdtempSync(join(tmpdir(), 'trib-chain-keys-'));
  const out: PaidProvider[] = [];
  for (const [i, dataset] of datasets.entries()) {
    const keyFile = join(dir, `p${i}.key`);
    const identity = loadOrCreateIdentity(keyFile);
    const wallet = loadOrCreatePayoutKey(keyFile);
    await (await gasFrom.sendTransaction({ to: wallet.address, value: 10n ** 18n })).wait();
    const payout = await createPayoutBinding(identity, wallet);
    const plantedBehaviour = behaviours[i];
    out.push({
      client: createResearchClient(
        {
          url,
          jobId,
          identity,
          dataset,
          backend: 'cpu',
          allowPlaintext: true, // most paid-job tests run in mode none
          payout,
          reconnectDelayMs: 50,
        },
        plantedBehaviour,
      ),
      wallet,
      keyFile,
    });
  }
  return out;
}
