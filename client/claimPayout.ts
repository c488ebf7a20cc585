import { getAddress, type Signer, type Wallet } from 'ethers';
import { z } from 'zod';
import { EscrowClient, EscrowRevertError } from '../contracts/escrow';
import { pinnedProvider, readChainId, rpcHost } from '../contracts/rpc';
import { TributaryError } from '../shared/errors';
import { createBuyerClient } from './buyer/client';
import { signInWithEthereum } from './buyer/signInWithEthereum';

/** GET /v1/jobs/:id/payouts/:address, as the client checks it (the coordinator's answers are a trust boundary). */
export const PayoutProofSchema = z.object({
  jobId: z.string(),
  escrow: z.string().regex(/^0x[0-9a-fA-F]{40}$/),
  chainId: z.number().int().positive(),
  onChainJobId: z.string().regex(/^[0-9]{1,78}$/),
  account: z.string().regex(/^0x[0-9a-fA-F]{40}$/),
  amountWei: z.string().regex(/^[0-9]{1,78}$/),
  proof: z.array(z.string().regex(/^0x[0-9a-fA-F]{64}$/)).max(64),
  score: z.number(),
  scoreLabel: z.string(),
});
export type PayoutProof = z.infer<typeof PayoutProofSchema>;

export interface ClaimOptions {
  /** Coordinator base URL. */
  coordinator: string;
  jobId: string;
  /** JSON-RPC URL of the escrow's chain. */
  rpcUrl: string;
  /** The payout key (client/keyFile.ts loadOrCreatePayoutKey); it pays the claim's gas. */
  wallet: Wallet;
}

export interface ClaimResult {
  account: string;
  amountWei: string;
  /** null when the payout had already been claimed (nothing was sent). */
  txHash: string | null;
  alreadyClaimed: boolean;
  proof: PayoutProof;
}

/**
 * Fetches this address's payout and Merkle proof from the coordinator. The coordinator serves a proof
 * only to that address's holder (or the job's participant it belongs to, or its owner): pass the
 * payout wallet and this signs in with it first (Sign-In with Ethereum). Throws PAYOUT_NOT_READY /
 * PAYOUT_NOT_FOUND, AUTH_REQUIRED without a wallet.
 */
export async function fetchPayoutProof(
  coordinator: string,
  jobId: string,
  address: string,
  wallet?: Signer,
): Promise<PayoutProof> {
  const headers: Record<string, string> = {};
  if (wallet) {
    const session = await signInWithEthereum(createBuyerClient({ url: coordinator }), { wallet });
    headers.authorization = `Bearer ${session.token}`;
  }
  const res = await fetch(new URL(`/v1/jobs/${encodeURIComponent(jobId)}/payouts/${address}`, coordinator), {
    headers,
  });
  // A proxy's HTML error page or a truncated answer is not the coordinator's JSON: say so, coded.
  const body = (await res.json().catch(() => null)) as { error?: { code?: string; message?: string } } | null;
  if (!body) throw new TributaryError('INTERNAL', `The coordinator's payout answer (HTTP ${res.status}) is not JSON.`);
  if (!res.ok) {
    const code = body.error?.code;
    const known =
      code === 'PAYOUT_NOT_READY' ||
      code === 'PAYOUT_NOT_FOUND' ||
      code === 'JOB_NOT_FOUND' ||
      code === 'AUTH_REQUIRED' ||
      code === 'AUTH_FORBIDDEN'
        ? code
        : 'INTERNAL';
    throw new TributaryError(known, body.error?.message ?? `HTTP ${res.status}`);
  }
  const parsed = PayoutProofSchema.safeParse(body);
  if (!parsed.success) {
    throw new TributaryError(
      'INTERNAL',
      `The coordinator's payout answer is malformed: ${parsed.error.issues[0]?.path.join('.')} ${parsed.error.issues[0]?.message}.`,
    );
  }
  return parsed.data;
}

/**
 * `tributary client claim`: fetches the proof over REST and claims the payout from the escrow
 * (the contract checks the proof against the settled root; a claim twice is refused on chain, so
 * this checks `hasClaimed` first and sends nothing then).
 */
export async function claimPayout(options: ClaimOptions): Promise<ClaimResult> {
  const account = options.wallet.address;
  const proof = await fetchPayoutProof(options.coordinator, options.jobId, account, options.wallet);
  if (getAddress(proof.account) !== account) {
    throw new TributaryError(
      'PAYOUT_NOT_FOUND',
      `The coordinator answered with a payout for ${proof.account}, not ${account}.`,
    );
  }
  const chainId = await readChainId(options.rpcUrl).catch((err) => {
    throw new TributaryError(
      'CHAIN_UNAVAILABLE',
      `Cannot reach the chain RPC at ${rpcHost(options.rpcUrl)}: ${(err as Error).message.split(options.rpcUrl).join('<rpc-url>')}`,
    );
  });
  if (chainId !== proof.chainId) {
    throw new TributaryError(
      'CHAIN_UNAVAILABLE',
      `The RPC is on chain ${chainId}; the job's escrow is on chain ${proof.chainId}.`,
    );
  }
  const provider = pinnedProvider(options.rpcUrl, chainId, 250);
  try {
    const escrow = new EscrowClient(proof.escrow, options.wallet.connect(provider));
    const jobId = BigInt(proof.onChainJobId);
    const amount = BigInt(proof.amountWei);
    if (await escrow.hasClaimed(jobId, account)) {
      return { account, amountWei: proof.amountWei, txHash: null, alreadyClaimed: true, proof };
    }
    // A challenge window keeps claims closed for a while after settlement: say until when.
    const [onChain, block] = await Promise.all([escrow.getJob(jobId), provider.getBlock('latest')]);
    if (block && BigInt(block.timestamp) < onChain.claimsOpenAt) {
      throw new TributaryError(
        'PAYOUT_NOT_READY',
        `Claims for this job open at ${new Date(Number(onChain.claimsOpenAt) * 1000).toISOString()} (challenge window).`,
      );
    }
    try {
      const receipt = await escrow.claim(jobId, { account, amount, proof: proof.proof });
      return { account, amountWei: proof.amountWei, txHash: receipt.hash, alreadyClaimed: false, proof };
    } catch (err) {
      if (err instanceof EscrowRevertError)
        throw new TributaryError('CHAIN_UNAVAILABLE', `The escrow refused the claim: ${err.message}`, { cause: err });
      throw err;
    }
  } finally {
    provider.destroy();
  }
}
