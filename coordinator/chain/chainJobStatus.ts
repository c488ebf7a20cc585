import type { ChainSpec } from '../../shared/schemas/jobSpec';

/** One round's on-chain commitment, as the coordinator tracks it. */
export interface RoundCommitStatus {
  round: number;
  /** bytes32 of the round's model hash (SHA-256 of its codec bytes). */
  modelHash: string;
  /** Validation accuracy in basis points (0 without a validation set). */
  metric: number;
  /** bytes32 of the round's signed transcript hash (bytes32 0 when the round record has none). */
  transcriptHash: string;
  /** pending: not on chain yet; committed: on chain (by this coordinator, possibly before a restart); failed: refused by the contract. */
  status: 'pending' | 'committed' | 'failed';
  /** Known when this process sent it or found it in the escrow's logs. */
  txHash: string | null;
  error?: string;
}

/** The settlement of a chain job. */
export interface SettlementStatus {
  /** waiting: the job has not finished; pending: the plan is built and settle not confirmed yet; settled; failed: the contract refused (see error); released: the job ended without a committed round and its whole budget went back to the buyer. */
  status: 'waiting' | 'pending' | 'settled' | 'failed' | 'released';
  /**
   * Set when the settlement was disputed (seen when the worker reads a settled escrow, e.g. after a
   * restart): pending (the arbiter has not answered), confirmed (the arbiter kept this root),
   * corrected (the arbiter posted another root: proofs come from the arbiter's tree), expired (no
   * answer: claims pay half).
   */
  dispute?: 'pending' | 'confirmed' | 'corrected' | 'expired';
  root: string | null;
  totalWei: string | null;
  /** What the scores measure ("participation" = rounds completed, until contribution scoring is plugged in). */
  scoreLabel: string | null;
  txHash: string | null;
  error?: string;
}

/** GET /v1/jobs/:id/chain */
export interface ChainJobStatus {
  escrow: string;
  chainId: number;
  /** The escrow's job id (decimal). */
  onChainJobId: string;
  coordinatorAddress: string;
  /** Whether the escrow held the budget (the job then recruits). */
  funded: boolean;
  /** The escrow's budget as last read (wei, decimal), null before the first read. */
  budgetWei: string | null;
  commits: RoundCommitStatus[];
  settlement: SettlementStatus;
  /** The last failed chain request (RPC down, timeout, refused), cleared by nothing: `at` says when. */
  lastRpcError: { message: string; at: string } | null;
  /** Chain requests retried so far (each failure waits with exponential backoff). */
  retries: number;
  /** Consecutive failures right now (0 when the last request succeeded). */
  consecutiveFailures: number;
}

/** A chain job's status before its worker has read the chain. */
export function initialChainJobStatus(chain: ChainSpec, coordinatorAddress: string, funded: boolean): ChainJobStatus {
  return {
    escrow: chain.escrow,
    chainId: chain.chainId,
    onChainJobId: chain.jobId,
    coordinatorAddress,
    funded,
    budgetWei: null,
    commits: [],
    settlement: { status: 'waiting', root: null, totalWei: null, scoreLabel: null, txHash: null },
    lastRpcError: null,
    retries: 0,
    consecutiveFailures: 0,
  };
}
