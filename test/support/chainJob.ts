/**
 * A paid job on a real anvil: the buyer (anvil dev account 0) deploys the escrow, the coordinator
 * signs with dev account 1's key (derived from anvil's public test mnemonic), and providers get a
 * key file with an Ed25519 identity and a payout key, bound for joining.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { id, type JsonRpcProvider, type JsonRpcSigner, type Wallet } from 'ethers';
import { loadOrCreateIdentity, loadOrCreatePayoutKey } from '../../client/keyFile';
import { createPayoutBinding } from '../../client/payoutBinding';
import type { PlantedBehaviour } from '../../client/plantedBehaviour';
import { createResearchClient } from '../../client/plantedClient';
import type { TributaryClient } from '../../client/tributaryClient';
import { deployEscrow, NATIVE, type EscrowClient } from '../../contracts/escrow';
import { pinnedProvider } from '../../contracts/rpc';
import { anvilDevKey } from '../../contracts/testing';
import type { Dataset } from '../../shared/data/dataset';

/** The private key of anvil dev account `index`. */
export const anvilKey = anvilDevKey;

export function localProvider(url: string): JsonRpcProvider {
  return pinnedProvider(url, 31337, 20);
}

/** Deploys a fresh escrow as the buyer (dev account 0). */
export async function deployAsBuyer(
  provider: JsonRpcProvider,
): Promise<{ buyer: JsonRpcSigner; escrow: EscrowClient }> {
  const buyer = await provider.getSigner(0);
  return { buyer, escrow: await deployEscrow(buyer) };
}

/** The buyer funds escrow job `expectedId` (native ETH unless `token`, no challenge window unless given) for `coordinator`. */
export async function fundJob(
  escrow: EscrowClient,
  provider: JsonRpcProvider,
  coordinator: string,
  budget: bigint,
  expectedId = 1n,
  token = NATIVE,
  challengeWindow = 0,
): Promise<bigint> {
  const block = await provider.getBlock('latest');
  const { jobId } = await escrow.createJob({
    specHash: id('tributary-e2e-spec'),
    token,
    budget,
    coordinator,
    deadline: BigInt(block!.timestamp) + 3600n,
    challengeWindow,
  });
  if (jobId !== expectedId) throw new Error(`expected escrow job ${expectedId}, got ${jobId}`);
  return jobId;
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
