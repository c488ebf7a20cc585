import { EscrowClient, type JobState, type RoundCommitment } from '../../contracts/escrow';
import { pinnedProvider, readChainId, rpcHost } from '../../contracts/rpc';
import { TributaryError } from '../../shared/errors';

/** What the escrow holds about one job: its state, every committed round, and the root the coordinator posted. */
export interface EscrowRecord {
  address: string;
  chainId: number;
  jobId: bigint;
  state: JobState;
  /** Round r's commitment at index r - 1, for r = 1 .. state.lastRound. */
  rounds: RoundCommitment[];
  /** The coordinator's own `settle` (from its event); null before settlement, or when the logs cannot be read. */
  posted: { root: string; total: bigint } | null;
}

/**
 * Reads a job's escrow through `rpcUrl` (checking the RPC is on `chainId`): the job, its round
 * commitments, and the `Settled` event (the arbiter's resolution replaces the root in the state, not
 * in that event). Throws CHAIN_UNAVAILABLE when the RPC cannot be reached or is on another chain.
 */
export async function readEscrow(
  rpcUrl: string,
  chainId: number,
  address: string,
  jobId: bigint,
): Promise<EscrowRecord> {
  const actual = await readChainId(rpcUrl).catch((err: unknown) => {
    throw new TributaryError(
      'CHAIN_UNAVAILABLE',
      `Cannot reach the chain RPC at ${rpcHost(rpcUrl)}: ${String((err as Error).message)
        .split(rpcUrl)
        .join('<rpc-url>')}`,
    );
  });
  if (actual !== chainId) {
    throw new TributaryError(
      'CHAIN_UNAVAILABLE',
      `The RPC is on chain ${actual}; the job's escrow is on chain ${chainId}.`,
    );
  }
  const provider = pinnedProvider(rpcUrl, chainId, 250);
  try {
    const escrow = new EscrowClient(address, provider);
    const state = await escrow.getJob(jobId);
    const rounds: RoundCommitment[] = [];
    for (let r = 1n; r <= state.lastRound; r++) rounds.push(await escrow.getRound(jobId, r));
    let posted: EscrowRecord['posted'] = null;
    try {
      const c = escrow.contract;
      const [settled] = await c.queryFilter(c.filters.Settled(jobId));
      const args = (settled as unknown as { args?: { payoutRoot: string; payoutTotal: bigint } } | undefined)?.args;
      if (args) posted = { root: args.payoutRoot.toLowerCase(), total: args.payoutTotal };
    } catch {
      // Some hosted RPCs limit log ranges: fall back to the state's root below when nothing disputed it.
    }
    if (!posted && !state.disputed && state.claimsOpenAt > 0n)
      posted = { root: state.payoutRoot.toLowerCase(), total: state.payoutTotal };
    return { address, chainId, jobId, state, rounds, posted };
  } catch (err) {
    if (err instanceof TributaryError) throw err;
    throw new TributaryError(
      'CHAIN_UNAVAILABLE',
      `Reading escrow job ${jobId} of ${address} failed: ${String((err as Error).message)
        .split(rpcUrl)
        .join('<rpc-url>')
        .slice(0, 300)}`,
      { cause: err },
    );
  } finally {
    provider.destroy();
  }
}
