/**
 * Typed ethers v6 wrappers around `TributaryEscrow` and `RewardToken` (artifacts from
 * `contracts/build.ts`). Every write waits for its receipt and throws `EscrowRevertError` with the
 * decoded custom error when the contract reverts.
 */
import {
  Contract,
  ContractFactory,
  Interface,
  ZeroAddress,
  ZeroHash,
  type ContractRunner,
  type ContractTransactionReceipt,
  type ContractTransactionResponse,
  type Signer,
} from 'ethers';
import escrowArtifact from './artifacts/TributaryEscrow.json';
import tokenArtifact from './artifacts/RewardToken.json';

/** Native ETH as the reward "token". */
export const NATIVE = ZeroAddress;

/** `TributaryEscrow.Status`. */
export const JobStatus = { None: 0, Open: 1, Settled: 2, Recovered: 3, Disputed: 4, Swept: 5 } as const;
export type JobStatus = (typeof JobStatus)[keyof typeof JobStatus];

/** `TIMEOUT_HAIRCUT_BPS`: share of each allocation withheld when a dispute expires unanswered. */
export const TIMEOUT_HAIRCUT_BPS = 5000n;
/** `MIN_ARBITRATION_WINDOW` (seconds). */
export const MIN_ARBITRATION_WINDOW = 86_400n;
/** `MIN_CLAIM_PERIOD` (seconds). */
export const MIN_CLAIM_PERIOD = 7n * 86_400n;
/** `MAX_WINDOW` (seconds): the longest challenge window, arbitration window or claim period. */
export const MAX_WINDOW = 3650n * 86_400n;
/** Arbitration window `createJob` uses when none is given: 3 days. */
export const DEFAULT_ARBITRATION_WINDOW = 3n * 86_400n;
/** Claim period `createJob` uses when none is given: 30 days. */
export const DEFAULT_CLAIM_PERIOD = 30n * 86_400n;

export const escrowInterface = new Interface(escrowArtifact.abi);
export const tokenInterface = new Interface(tokenArtifact.abi);

/** Custom errors of `TributaryEscrow` (the names the contract reverts with). */
export type EscrowErrorName =
  | 'ZeroAddress'
  | 'ZeroAmount'
  | 'InvalidDeadline'
  | 'InvalidArbiter'
  | 'ArbitrationWindowTooShort'
  | 'ClaimPeriodTooShort'
  | 'WindowTooLong'
  | 'ValueMismatch'
  | 'UnknownJob'
  | 'NotBuyer'
  | 'NotCoordinator'
  | 'NotArbiter'
  | 'NotDisputant'
  | 'JobNotOpen'
  | 'AlreadySettled'
  | 'NotSettled'
  | 'DeadlinePassed'
  | 'DeadlineNotReached'
  | 'RoundOutOfOrder'
  | 'RoundConflict'
  | 'NoRoundsCommitted'
  | 'PayoutExceedsBudget'
  | 'InvalidPayoutRoot'
  | 'ClaimsNotOpen'
  | 'ClaimPeriodOver'
  | 'ClaimPeriodNotOver'
  | 'AlreadyClaimed'
  | 'InvalidProof'
  | 'ClaimExceedsTotal'
  | 'NothingToRefund'
  | 'NothingToSweep'
  | 'AlreadyDisputed'
  | 'ChallengeWindowOver'
  | 'NotDisputed'
  | 'ArbitrationPending'
  | 'ArbitrationOver';

/** A call reverted with a custom error of the escrow (or of the token / OpenZeppelin libraries). */
export class EscrowRevertError extends Error {
  override readonly name = 'EscrowRevertError';
  constructor(
    /** The Solidity error name, e.g. `AlreadyClaimed`, or `unknown` when the data did not decode. */
    readonly errorName: EscrowErrorName | string,
    readonly args: readonly unknown[],
    options?: { cause?: unknown },
  ) {
    super(`TributaryEscrow reverted with ${errorName}(${args.map(String).join(', ')})`, options);
  }
}

function findRevertData(e: unknown): string | undefined {
  for (let cur: unknown = e, depth = 0; cur && typeof cur === 'object' && depth < 8; depth++) {
    const o = cur as { data?: unknown; error?: unknown; info?: { error?: unknown }; cause?: unknown };
    if (typeof o.data === 'string' && o.data.startsWith('0x') && o.data.length >= 10) return o.data;
    if (o.data && typeof o.data === 'object' && typeof (o.data as { data?: unknown }).data === 'string') {
      return (o.data as { data: string }).data;
    }
    cur = o.error ?? o.info?.error ?? o.cause;
  }
  return undefined;
}

/** Decodes a revert of the escrow or token from an ethers error; undefined when it is not one. */
export function decodeRevert(e: unknown): EscrowRevertError | undefined {
  const data = findRevertData(e);
  if (!data) return undefined;
  for (const iface of [escrowInterface, tokenInterface]) {
    const parsed = iface.parseError(data);
    if (parsed) return new EscrowRevertError(parsed.name, [...parsed.args], { cause: e });
  }
  return new EscrowRevertError('unknown', [data], { cause: e });
}

async function send(tx: Promise<ContractTransactionResponse>): Promise<ContractTransactionReceipt> {
  try {
    const receipt = await (await tx).wait();
    if (!receipt) throw new Error('transaction was dropped');
    return receipt;
  } catch (e) {
    throw decodeRevert(e) ?? e;
  }
}

/** On-chain state of a job (`TributaryEscrow.getJob`). */
export interface JobState {
  buyer: string;
  coordinator: string;
  /** Resolves disputes (named at creation; neither the buyer nor the coordinator). */
  arbiter: string;
  token: string;
  status: JobStatus;
  specHash: string;
  deadline: bigint;
  challengeWindow: bigint;
  /** Seconds the arbiter has to answer a dispute. */
  arbitrationWindow: bigint;
  /** Seconds claims stay open (from `claimsOpenAt`); then the buyer may sweep. */
  claimPeriod: bigint;
  /** Whether a dispute was raised (at most one per job). */
  disputed: boolean;
  /** Unix time of the dispute (0 if none). */
  disputedAt: bigint;
  /** Whether an unanswered dispute expired: claims pay their leaf less the haircut. */
  haircut: boolean;
  lastRound: bigint;
  /** Everything deposited (create + top-ups). */
  budget: bigint;
  payoutRoot: string;
  payoutTotal: bigint;
  /** Unix time claims open (0 until settled). */
  claimsOpenAt: bigint;
  /** Paid to contributors so far. */
  claimed: bigint;
  /** Paid back to the buyer so far (refund, recovery, release). */
  refunded: bigint;
  /** Unclaimed funds the buyer swept after the claim period. */
  swept: bigint;
  /** budget - claimed - refunded - swept. */
  held: bigint;
}

export interface CreateJobParams {
  specHash: string;
  /** ERC-20 address, or `NATIVE` (address(0)) for ETH. */
  token: string;
  budget: bigint;
  coordinator: string;
  /** Resolves disputes; must be neither the buyer nor the coordinator. */
  arbiter: string;
  /** Unix seconds; settle by then or the buyer can recover the budget. */
  deadline: bigint | number;
  /** Seconds between settlement and the opening of claims (disputes only within it). */
  challengeWindow: bigint | number;
  /** Seconds the arbiter has to answer a dispute (>= MIN_ARBITRATION_WINDOW). @default DEFAULT_ARBITRATION_WINDOW */
  arbitrationWindow?: bigint | number;
  /** Seconds claims stay open before the buyer may sweep (>= MIN_CLAIM_PERIOD). @default DEFAULT_CLAIM_PERIOD */
  claimPeriod?: bigint | number;
  /** Approve the escrow for `budget` first (ERC-20 only). @default true */
  approve?: boolean;
}

export interface RoundCommit {
  round: bigint | number;
  modelHash: string;
  /** Validation metric as an integer, e.g. accuracy in basis points. */
  metric: bigint | number;
  /** bytes32 hash of the coordinator's signed round transcript. @default ZeroHash (none) */
  transcriptHash?: string;
}

/** A round as `getRound` returns it (zeroes when not recorded). */
export interface RoundCommitment {
  modelHash: string;
  metric: bigint;
  transcriptHash: string;
}

/** A `TributaryEscrow` deployment seen through one signer/runner. */
export class EscrowClient {
  readonly contract: Contract;
  constructor(
    readonly address: string,
    readonly runner: ContractRunner,
  ) {
    this.contract = new Contract(address, escrowArtifact.abi, runner);
  }

  /** The same deployment, sending as `runner`. */
  connect(runner: ContractRunner): EscrowClient {
    return new EscrowClient(this.address, runner);
  }

  /** Creates and funds a job; returns its id. */
  async createJob(p: CreateJobParams): Promise<{ jobId: bigint; receipt: ContractTransactionReceipt }> {
    const native = p.token === NATIVE;
    if (!native && (p.approve ?? true)) await approveToken(p.token, this.runner, this.address, p.budget);
    const terms = {
      specHash: p.specHash,
      token: p.token,
      amount: p.budget,
      coordinator: p.coordinator,
      arbiter: p.arbiter,
      deadline: p.deadline,
      challengeWindow: p.challengeWindow,
      arbitrationWindow: p.arbitrationWindow ?? DEFAULT_ARBITRATION_WINDOW,
      claimPeriod: p.claimPeriod ?? DEFAULT_CLAIM_PERIOD,
    };
    const receipt = await send(this.contract.createJob(terms, { value: native ? p.budget : 0n }));
    const ev = findEvent(receipt, 'JobCreated');
    return { jobId: ev.args.jobId as bigint, receipt };
  }

  /** Adds to a job's budget (buyer only). For ERC-20 jobs approve first, or pass `approve: true`. */
  async topUp(
    jobId: bigint,
    amount: bigint,
    opts: { token?: string; approve?: boolean } = {},
  ): Promise<ContractTransactionReceipt> {
    const token = opts.token ?? (await this.getJob(jobId)).token;
    const native = token === NATIVE;
    if (!native && (opts.approve ?? true)) await approveToken(token, this.runner, this.address, amount);
    return send(this.contract.topUp(jobId, amount, { value: native ? amount : 0n }));
  }

  /** Commits a round (coordinator only). `recorded` is false when the identical round was already committed. */
  async commitRound(
    jobId: bigint,
    c: RoundCommit,
  ): Promise<{ recorded: boolean; receipt: ContractTransactionReceipt }> {
    const receipt = await send(
      this.contract.commitRound(jobId, c.round, c.modelHash, c.metric, c.transcriptHash ?? ZeroHash),
    );
    return { recorded: receipt.logs.length > 0, receipt };
  }

  /** Posts the payout root and total (coordinator only). */
  settle(jobId: bigint, root: string, total: bigint): Promise<ContractTransactionReceipt> {
    return send(this.contract.settle(jobId, root, total));
  }

  /** Claims `account`'s allocation (anyone may send it; the funds go to `account`). */
  claim(
    jobId: bigint,
    a: { account: string; amount: bigint; proof: readonly string[] },
  ): Promise<ContractTransactionReceipt> {
    return send(this.contract.claim(jobId, a.account, a.amount, a.proof));
  }

  /** Sends the unspent budget back to the buyer after settlement (buyer only). */
  refund(jobId: bigint): Promise<ContractTransactionReceipt> {
    return send(this.contract.refund(jobId));
  }

  /** Returns the whole budget of an unsettled job after its deadline (buyer only). */
  recoverAfterDeadline(jobId: bigint): Promise<ContractTransactionReceipt> {
    return send(this.contract.recoverAfterDeadline(jobId));
  }

  /** Returns the whole budget of an open job to its buyer and closes it (coordinator only). */
  release(jobId: bigint): Promise<ContractTransactionReceipt> {
    return send(this.contract.release(jobId));
  }

  /** Sends everything still held to the buyer once the claim period is over (buyer only). */
  sweep(jobId: bigint): Promise<ContractTransactionReceipt> {
    return send(this.contract.sweep(jobId));
  }

  /** Disputes the posted root during the challenge window; claims freeze (buyer or arbiter, once). */
  dispute(jobId: bigint): Promise<ContractTransactionReceipt> {
    return send(this.contract.dispute(jobId));
  }

  /** The arbiter's corrected root and total for a disputed job; claims open at once (arbiter only). */
  resolveDispute(jobId: bigint, root: string, total: bigint): Promise<ContractTransactionReceipt> {
    return send(this.contract.resolveDispute(jobId, root, total));
  }

  /** Ends an unanswered dispute after the arbitration window: claims reopen at the haircut (anyone). */
  expireDispute(jobId: bigint): Promise<ContractTransactionReceipt> {
    return send(this.contract.expireDispute(jobId));
  }

  async getJob(jobId: bigint): Promise<JobState> {
    let j: Record<string, unknown>;
    try {
      j = await this.contract.getJob(jobId);
    } catch (e) {
      throw decodeRevert(e) ?? e;
    }
    const budget = j.budget as bigint;
    const claimed = j.claimed as bigint;
    const refunded = j.refunded as bigint;
    const swept = j.swept as bigint;
    return {
      buyer: j.buyer as string,
      coordinator: j.coordinator as string,
      arbiter: j.arbiter as string,
      token: j.token as string,
      status: Number(j.status) as JobStatus,
      specHash: j.specHash as string,
      deadline: j.deadline as bigint,
      challengeWindow: j.challengeWindow as bigint,
      arbitrationWindow: j.arbitrationWindow as bigint,
      claimPeriod: j.claimPeriod as bigint,
      disputed: j.disputed as boolean,
      disputedAt: j.disputedAt as bigint,
      haircut: j.haircut as boolean,
      lastRound: j.lastRound as bigint,
      budget,
      payoutRoot: j.payoutRoot as string,
      payoutTotal: j.payoutTotal as bigint,
      claimsOpenAt: j.claimsOpenAt as bigint,
      claimed,
      refunded,
      swept,
      held: budget - claimed - refunded - swept,
    };
  }

  async getRound(jobId: bigint, round: bigint | number): Promise<RoundCommitment> {
    const [modelHash, metric, transcriptHash] = (await this.contract.getRound(jobId, round)) as [
      string,
      bigint,
      string,
    ];
    return { modelHash, metric, transcriptHash };
  }

  hasClaimed(jobId: bigint, account: string): Promise<boolean> {
    return this.contract.hasClaimed(jobId, account) as Promise<boolean>;
  }
}

/** What a claim of an `amount` leaf pays now: the leaf, or the leaf less the haircut after an expired dispute. */
export function claimableAmount(job: Pick<JobState, 'haircut'>, amount: bigint): bigint {
  return job.haircut ? (amount * (10_000n - TIMEOUT_HAIRCUT_BPS)) / 10_000n : amount;
}

function findEvent(receipt: ContractTransactionReceipt, name: string) {
  for (const log of receipt.logs) {
    const parsed = escrowInterface.parseLog(log);
    if (parsed?.name === name) return parsed;
  }
  throw new Error(`receipt ${receipt.hash} has no ${name} event`);
}

async function approveToken(token: string, runner: ContractRunner, spender: string, amount: bigint): Promise<void> {
  const erc20 = new Contract(token, tokenArtifact.abi, runner);
  await send(erc20.approve(spender, amount));
}

/** Deploys a fresh `TributaryEscrow`. */
export async function deployEscrow(signer: Signer): Promise<EscrowClient> {
  const factory = new ContractFactory(escrowArtifact.abi, escrowArtifact.bytecode, signer);
  const c = await factory.deploy();
  await c.waitForDeployment();
  return new EscrowClient(await c.getAddress(), signer);
}

/** Deploys a `RewardToken` (the signer owns it and may mint). */
export async function deployRewardToken(
  signer: Signer,
  name = 'Tributary Reward',
  symbol = 'TRIB',
): Promise<RewardToken> {
  const factory = new ContractFactory(tokenArtifact.abi, tokenArtifact.bytecode, signer);
  const c = await factory.deploy(name, symbol);
  await c.waitForDeployment();
  return new RewardToken(await c.getAddress(), signer);
}

/** A `RewardToken` (plain ERC-20 with an owner-only mint). */
export class RewardToken {
  readonly contract: Contract;
  constructor(
    readonly address: string,
    runner: ContractRunner,
  ) {
    this.contract = new Contract(address, tokenArtifact.abi, runner);
  }
  connect(runner: ContractRunner): RewardToken {
    return new RewardToken(this.address, runner);
  }
  mint(to: string, amount: bigint): Promise<ContractTransactionReceipt> {
    return send(this.contract.mint(to, amount));
  }
  approve(spender: string, amount: bigint): Promise<ContractTransactionReceipt> {
    return send(this.contract.approve(spender, amount));
  }
  balanceOf(account: string): Promise<bigint> {
    return this.contract.balanceOf(account) as Promise<bigint>;
  }
}
