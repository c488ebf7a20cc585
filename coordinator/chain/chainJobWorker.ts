import { EscrowRevertError, JobStatus as EscrowStatus, type EscrowClient, type JobState } from '../../contracts/escrow';
import { checkEscrowBinding } from '../../contracts/escrowBinding';
import { TributaryError } from '../../shared/errors';
import type { Logger } from '../logger';
import type { JobRecord, PayoutPlanRecord, Store } from '../store/store';
import { backoffDelay } from './backoff';
import type { ChainConnection } from './chainConnection';
import {
  initialChainJobStatus,
  type ChainJobStatus,
  type RoundCommitStatus,
  type SettlementStatus,
} from './chainJobStatus';
import type { ScoresFor } from './participationScores';
import { buildPayoutPlan } from './payoutPlan';

/** What a chain worker needs from the job manager. */
export interface JobControl {
  getJob(jobId: string): Promise<JobRecord>;
  /** Starts recruiting a `pending` chain job (idempotent). */
  activateJob(jobId: string): Promise<void>;
  /** Stops a pending or running job for good (its runner, if any) and marks it `failed` with `reason`. */
  cancelJob(jobId: string, reason: string): Promise<JobRecord>;
}

export interface ChainJobWorkerDeps {
  chain: ChainConnection;
  store: Store;
  jobs: JobControl;
  scoresFor: ScoresFor;
  logger: Logger;
  retryBaseMs: number;
  retryMaxMs: number;
  pollMs: number;
  /** Stop a running job and settle once its escrow deadline is this close (seconds, chain time). @default 600 */
  settleMarginSeconds?: number;
  /** Told once this worker's settle transaction is mined (the audit trail's `job.settlement.posted`); a failure is logged only. */
  onSettlementPosted?: (event: SettlementPosted) => Promise<unknown> | undefined;
  /**
   * Clustered: whether this node still holds the job's chain lease, asked before every transaction.
   * False stops the worker before it sends anything (a former holder, paused past its lease).
   */
  holdsLease?: () => Promise<boolean>;
  /**
   * Told the status after every step that changed it, with `done` once the worker finished (settled,
   * released or halted): the cluster stores it, so every node answers the REST chain views. A
   * LEASE_LOST refusal (a newer holder wrote) stops the worker.
   */
  onStatus?: (status: ChainJobStatus, done: boolean) => Promise<void>;
}

/**
 * Escrow reverts that mean another sender (a former holder of the chain lease, or this worker before
 * a restart) got there first: it settled or released the job between this worker's read and its
 * transaction (a round sent again is no revert at all: the escrow records it once). The step then
 * starts again from a fresh read instead of halting. RoundConflict (a different result for a
 * committed round) and every other revert still halt.
 */
const RACED_REVERTS: ReadonlySet<string> = new Set(['JobNotOpen', 'AlreadySettled']);

/** Thrown when the chain lease is gone before a transaction: nothing is sent, the worker stops. */
class ChainLeaseGone extends Error {}

/** bytes32 of a SHA-256 hex model hash. */
/** A settlement this coordinator posted: the plan's root and total, and the transaction. */
export interface SettlementPosted {
  jobId: string;
  root: string;
  totalWei: string;
  scoreLabel: string;
  txHash: string;
}

export const modelHashBytes32 = (hex: string) => `0x${hex}`;

/** bytes32 of a round's transcript hash (64 hex digits, 0x optional); bytes32 0 when the round has none. */
export function transcriptHashBytes32(hex: string | undefined): string {
  if (hex === undefined) return `0x${'0'.repeat(64)}`;
  const digits = hex.startsWith('0x') ? hex.slice(2) : hex;
  if (!/^[0-9a-fA-F]{64}$/.test(digits))
    throw new Error(`a round's transcriptHash must be 32 bytes as 64 hex digits, got "${hex.slice(0, 80)}"`);
  return `0x${digits.toLowerCase()}`;
}

/** The validation metric put on chain: accuracy in basis points, 0 without a validation set. */
export function metricOf(metrics: Record<string, number>): number {
  const acc = metrics.validation_accuracy;
  return typeof acc === 'number' && Number.isFinite(acc) ? Math.max(0, Math.round(acc * 10_000)) : 0;
}

type StepOutcome = 'idle' | 'progress' | 'finished';

/**
 * Drives one chain job's escrow from the coordinator's side, one step at a time, each step starting
 * from a fresh read of the chain and the store (so a retried or resumed step never repeats what
 * already happened): wait until the escrow holds the budget, check the escrow binding again (the
 * buyer signed this spec for this coordinator), then activate the job; commit every committed round
 * not yet on chain, in order, with its transcript hash; once the job has finished, build the payout
 * plan (stored before anything is sent, and never rebuilt), settle it, and stop. A job that ended
 * with no round committed (cancelled by its buyer, or failed in round 1) is released: the whole
 * budget goes back to the buyer at once.
 *
 * Failed requests (RPC down, timeouts) are retried with exponential backoff and shown in the status;
 * the federation never waits for the chain. A revert by the contract (the escrow refuses) halts the
 * worker with the reason in the status, since retrying cannot change the answer; except a revert that
 * says another sender was first (RACED_REVERTS: a former holder of the chain lease in a cluster), after
 * which the step is retried from a fresh read of the chain. In a cluster the worker runs under the
 * job's chain lease (ChainService): it asks the store before each transaction whether it still holds
 * it, and its status is stored after each step, fenced by the lease's token.
 */
export class ChainJobWorker {
  readonly status: ChainJobStatus;
  private readonly onChainId: bigint;
  private stopped = false;
  private wakeUp: (() => void) | null = null;
  private woken = false;
  private done: Promise<void> = Promise.resolve();
  private chainChecked = false;
  private logsScanned = false;
  private readonly commits = new Map<number, RoundCommitStatus>();

  constructor(
    private readonly job: JobRecord,
    private readonly deps: ChainJobWorkerDeps,
  ) {
    const chain = job.spec.chain!;
    this.onChainId = BigInt(chain.jobId);
    this.status = initialChainJobStatus(chain, deps.chain.address, job.status !== 'pending');
  }

  get jobId(): string {
    return this.job.id;
  }

  /** A snapshot for REST. */
  snapshot(): ChainJobStatus {
    return structuredClone({ ...this.status, commits: [...this.commits.values()].sort((a, b) => a.round - b.round) });
  }

  start(): void {
    this.done = this.loop();
  }

  /** Something changed (a round committed, the job ended): step now instead of at the next poll. */
  wake(): void {
    this.woken = true;
    this.wakeUp?.();
  }

  /**
   * Stops after the current step. Waits for it at most `graceMs`: a request to a dead RPC may take
   * until its timeout, and whatever it completes later is re-read by the next coordinator anyway.
   */
  async stop(graceMs = 3000): Promise<void> {
    this.stopped = true;
    this.wakeUp?.();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.done, new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)))]);
    clearTimeout(timer);
  }

  /** Resolves when the worker has finished (settled or halted) or was stopped. */
  whenDone(): Promise<void> {
    return this.done;
  }

  private async loop(): Promise<void> {
    let failures = 0;
    while (!this.stopped) {
      let outcome: StepOutcome;
      try {
        outcome = await this.step();
        failures = 0;
        this.status.consecutiveFailures = 0;
      } catch (err) {
        if (err instanceof ChainLeaseGone) this.stopped = true;
        if (this.stopped) break;
        const delay = backoffDelay(failures, this.deps.retryBaseMs, this.deps.retryMaxMs);
        failures++;
        this.status.consecutiveFailures = failures;
        this.status.retries++;
        const message = this.deps.chain.redact(errorText(err));
        this.status.lastRpcError = { message, at: new Date().toISOString() };
        this.deps.logger.info('chain request failed; retrying', { jobId: this.job.id, message, retryInMs: delay });
        await this.publish(false);
        await this.sleep(delay, false);
        continue;
      }
      if (this.stopped) break;
      await this.publish(outcome === 'finished');
      if (outcome === 'finished') break;
      if (outcome === 'idle') await this.sleep(this.deps.pollMs, true);
    }
  }

  private published = '';

  /** Hands a changed status to onStatus; a LEASE_LOST refusal stops the worker, other failures wait for the next step. */
  private async publish(done: boolean): Promise<void> {
    if (!this.deps.onStatus) return;
    const status = this.snapshot();
    const text = JSON.stringify([status, done]);
    if (text === this.published) return;
    try {
      await this.deps.onStatus(status, done);
      this.published = text;
    } catch (err) {
      if (err instanceof TributaryError && err.code === 'LEASE_LOST') {
        this.deps.logger.info('chain status refused: another node holds the chain lease; stopping', {
          jobId: this.job.id,
        });
        this.stopped = true;
        return;
      }
      this.deps.logger.error('chain status not stored', { jobId: this.job.id, message: errorText(err) });
    }
  }

  /** Before a transaction: stop (ChainLeaseGone) unless this node still holds the chain lease. */
  private async assertHoldsLease(what: string): Promise<void> {
    if (!this.deps.holdsLease || (await this.deps.holdsLease())) return;
    this.deps.logger.info('chain lease lost before a transaction; not sent', { jobId: this.job.id, what });
    throw new ChainLeaseGone(what);
  }

  /** A revert that another sender caused (RACED_REVERTS): retried from a fresh read, with backoff. */
  private raced(what: string, err: EscrowRevertError): Error {
    this.deps.logger.info('escrow refused a transaction another sender already made; reading the chain again', {
      jobId: this.job.id,
      what,
      revert: err.errorName,
    });
    return new Error(`${what}: ${err.errorName} (the chain moved since it was read; reading it again)`);
  }

  private async step(): Promise<StepOutcome> {
    const { chain } = this.deps;
    const spec = this.job.spec.chain!;
    if (this.halted) return 'finished';
    const job = await this.deps.jobs.getJob(this.job.id);
    // From the store first, so REST shows rounds waiting for the chain even while the RPC is down.
    await this.trackRounds(job);
    if (!this.chainChecked) {
      const chainId = await chain.chainId();
      if (chainId !== spec.chainId)
        return this.halt(`the RPC is on chain ${chainId}, the job's escrow on chain ${spec.chainId}`);
      this.chainChecked = true;
    }
    const escrow = await chain.escrow(spec.escrow);
    let onChain: JobState;
    try {
      onChain = await chain.timed('getJob', escrow.getJob(this.onChainId));
    } catch (err) {
      // UnknownJob while unfunded: the buyer may not have created it yet.
      if (err instanceof EscrowRevertError && err.errorName === 'UnknownJob' && job.status === 'pending') return 'idle';
      throw err;
    }
    this.status.budgetWei = onChain.budget.toString();
    if (onChain.coordinator.toLowerCase() !== chain.address.toLowerCase()) {
      return this.halt(
        `the escrow job's coordinator is ${onChain.coordinator}, not this coordinator (${chain.address})`,
      );
    }

    if ((job.status === 'pending' || job.status === 'running') && onChain.status === EscrowStatus.Open) {
      const stopped = await this.stopBeforeDeadline(job, onChain);
      if (stopped) return 'progress';
    }

    if (job.status === 'pending') {
      const required = spec.budgetWei ? BigInt(spec.budgetWei) : 1n;
      if (onChain.status !== EscrowStatus.Open || onChain.held < required) return 'idle';
      // Checked at creation too; again here, so that no job recruits on a binding the chain denies.
      try {
        checkEscrowBinding({ ...job.spec, chain: spec }, onChain, chain.address);
      } catch (err) {
        if (err instanceof TributaryError) return this.halt(`${err.code}: ${err.message}`);
        throw err;
      }
      if (this.stopped) return 'finished'; // never start a job while the coordinator shuts down
      await this.deps.jobs.activateJob(job.id);
      this.status.funded = true;
      this.deps.logger.info('escrow funded; job recruiting', { jobId: job.id, budgetWei: onChain.budget.toString() });
      return 'progress';
    }
    this.status.funded = true;

    if (!this.logsScanned) await this.scanLogs(escrow);
    await this.syncCommits(job, escrow, onChain);
    if (this.halted) return 'finished';
    if (job.status === 'running') return 'idle';
    return this.settle(job, escrow, onChain);
  }

  /**
   * Past its deadline the escrow refuses commits and settlement and lets the buyer recover the whole
   * budget, so a buyer could set a deadline shorter than its job and keep the model unpaid. Once the
   * deadline is within the margin (by chain time) the job is stopped, so the next steps commit and
   * settle the rounds already committed (or release the budget if there are none) in time.
   */
  private async stopBeforeDeadline(job: JobRecord, onChain: JobState): Promise<boolean> {
    const margin = BigInt(this.deps.settleMarginSeconds ?? 600);
    const now = await this.deps.chain.chainTime();
    if (onChain.deadline - now > margin) return false;
    const reason = `the escrow deadline is ${onChain.deadline - now} s away (margin ${margin} s): stopped to settle the committed rounds in time`;
    this.deps.logger.info('stopping a paid job before its escrow deadline', { jobId: job.id, reason });
    try {
      await this.deps.jobs.cancelJob(job.id, reason);
    } catch (err) {
      // It finished meanwhile: the next step settles it.
      if (!(err instanceof TributaryError && err.code === 'JOB_NOT_RUNNING')) throw err;
    }
    return true;
  }

  /** Commits every committed round the escrow does not have yet, in order. */
  private async syncCommits(job: JobRecord, escrow: EscrowClient, onChain: JobState): Promise<void> {
    const { chain } = this.deps;
    const lastOnChain = Number(onChain.lastRound);
    for (const c of this.commits.values()) {
      if (c.round <= lastOnChain && c.status !== 'committed') {
        const stored = await chain.timed('getRound', escrow.getRound(this.onChainId, c.round));
        if (
          stored.modelHash !== c.modelHash ||
          stored.metric !== BigInt(c.metric) ||
          stored.transcriptHash !== c.transcriptHash
        ) {
          c.status = 'failed';
          c.error = `round ${c.round} is on chain with model ${stored.modelHash}, metric ${stored.metric}, transcript ${stored.transcriptHash}`;
          this.halt(c.error);
          return;
        }
        c.status = 'committed';
        c.txHash ??= this.pendingHashes.get(c.round) ?? null;
      }
    }
    if (onChain.status !== EscrowStatus.Open) return;
    for (let round = lastOnChain + 1; round <= job.currentRound && !this.stopped; round++) {
      const c = this.commits.get(round);
      if (!c) throw new Error(`round ${round} is committed in the store but has no completed round record`);
      await this.assertHoldsLease(`commitRound ${round}`);
      try {
        const { receipt } = await chain.exclusive(`commitRound ${round}`, () =>
          escrow.commitRound(this.onChainId, {
            round,
            modelHash: c.modelHash,
            metric: c.metric,
            transcriptHash: c.transcriptHash,
          }),
        );
        c.status = 'committed';
        c.txHash = receipt.hash;
        this.deps.logger.info('round committed on chain', { jobId: job.id, round, txHash: receipt.hash });
      } catch (err) {
        if (err instanceof EscrowRevertError && RACED_REVERTS.has(err.errorName))
          throw this.raced(`commitRound ${round}`, err);
        if (err instanceof EscrowRevertError) {
          c.status = 'failed';
          c.error = err.message;
          this.halt(`commitRound ${round}: ${err.message}`);
          return;
        }
        throw err;
      }
    }
  }

  /** Adds every committed round of the store to the commit list (as pending until the chain has it). */
  private async trackRounds(job: JobRecord): Promise<void> {
    if (job.currentRound === 0 || this.commits.has(job.currentRound)) return;
    const rounds = (await this.deps.store.listRounds(job.id)).filter(
      (r) => r.status === 'completed' && r.round <= job.currentRound,
    );
    for (const r of rounds) {
      if (!this.commits.has(r.round)) {
        this.commits.set(r.round, {
          round: r.round,
          modelHash: modelHashBytes32(r.modelHash!),
          metric: metricOf(r.metrics),
          transcriptHash: transcriptHashBytes32(r.transcriptHash),
          status: 'pending',
          txHash: null,
        });
      }
    }
  }

  /** Builds (once) and posts the payout plan of a finished job; settled when the chain has its root. */
  private async settle(job: JobRecord, escrow: EscrowClient, onChain: JobState): Promise<StepOutcome> {
    const { chain, store } = this.deps;
    const s = this.status.settlement;
    let plan = await store.loadPayoutPlan(job.id);
    const settledStates: number[] = [EscrowStatus.Settled, EscrowStatus.Disputed, EscrowStatus.Swept];
    if (settledStates.includes(onChain.status)) {
      // After a dispute the arbiter's root may replace ours (or the haircut applies): that is the
      // escrow's answer, not a fault of this coordinator's plan.
      if (!onChain.disputed && (!plan || plan.root.toLowerCase() !== onChain.payoutRoot.toLowerCase())) {
        return this.halt(
          `the escrow is settled with root ${onChain.payoutRoot}, which is not this coordinator's stored plan`,
        );
      }
      if (plan) this.showPlan(plan);
      if (onChain.disputed) s.dispute = disputeOf(onChain, plan?.root);
      s.status = 'settled';
      return 'finished';
    }
    if (onChain.status === EscrowStatus.Recovered && job.currentRound === 0) {
      s.status = 'released';
      return 'finished';
    }
    if (onChain.status !== EscrowStatus.Open)
      return this.halt(`the escrow job is no longer open (status ${onChain.status}: recovered by the buyer)`);
    // Rounds were committed in this step (onChain was read before): settle from a fresh read.
    if (Number(onChain.lastRound) < job.currentRound) return 'progress';
    if (job.currentRound === 0) return this.release(escrow, job);
    if (!plan) {
      const { label, scores } = await this.deps.scoresFor(job.id);
      const participants = await store.listParticipants(job.id);
      await store.savePayoutPlan(buildPayoutPlan(job.id, onChain.held, scores, participants, label));
      // The first stored plan wins (a concurrent or earlier writer's plan is the one to settle).
      plan = (await store.loadPayoutPlan(job.id))!;
    }
    this.showPlan(plan);
    s.status = 'pending';
    await this.assertHoldsLease('settle');
    let txHash: string;
    try {
      const receipt = await chain.exclusive('settle', () =>
        escrow.settle(this.onChainId, plan.root, BigInt(plan.totalWei)),
      );
      txHash = receipt.hash;
      s.txHash = txHash;
    } catch (err) {
      if (err instanceof EscrowRevertError && RACED_REVERTS.has(err.errorName)) throw this.raced('settle', err);
      if (err instanceof EscrowRevertError) {
        s.status = 'failed';
        s.error = err.message;
        return this.halt(`settle: ${err.message}`);
      }
      throw err;
    }
    s.status = 'settled';
    this.deps.logger.info('job settled on chain', { jobId: job.id, totalWei: plan.totalWei, txHash: s.txHash });
    try {
      await this.deps.onSettlementPosted?.({
        jobId: job.id,
        root: plan.root,
        totalWei: plan.totalWei,
        scoreLabel: plan.scoreLabel,
        txHash,
      });
    } catch (err) {
      this.deps.logger.error('settlement observer failed', { jobId: job.id, message: String(err) });
    }
    return 'finished';
  }

  /** Returns the budget of a job that ended without a committed round (nothing to pay for). */
  private async release(escrow: EscrowClient, job: JobRecord): Promise<StepOutcome> {
    const s = this.status.settlement;
    await this.assertHoldsLease('release');
    try {
      const receipt = await this.deps.chain.exclusive('release', () => escrow.release(this.onChainId));
      s.txHash = receipt.hash;
    } catch (err) {
      if (err instanceof EscrowRevertError && RACED_REVERTS.has(err.errorName)) throw this.raced('release', err);
      if (err instanceof EscrowRevertError) {
        s.status = 'failed';
        s.error = err.message;
        return this.halt(`release: ${err.message}`);
      }
      throw err;
    }
    s.status = 'released';
    this.deps.logger.info('job ended without a round; budget released to the buyer', {
      jobId: job.id,
      txHash: s.txHash,
    });
    return 'finished';
  }

  private showPlan(plan: PayoutPlanRecord): void {
    Object.assign(this.status.settlement, { root: plan.root, totalWei: plan.totalWei, scoreLabel: plan.scoreLabel });
  }

  /** Fills in transaction hashes of commitments and the settlement sent before a restart (best effort). */
  private async scanLogs(escrow: EscrowClient): Promise<void> {
    this.logsScanned = true;
    try {
      const c = escrow.contract;
      const committed = await this.deps.chain.timed('getLogs', c.queryFilter(c.filters.RoundCommitted(this.onChainId)));
      for (const log of committed) {
        const round = Number((log as unknown as { args: { round: bigint } }).args.round);
        this.pendingHashes.set(round, log.transactionHash);
      }
      const settled = await this.deps.chain.timed('getLogs', c.queryFilter(c.filters.Settled(this.onChainId)));
      if (settled[0]) this.status.settlement.txHash ??= settled[0].transactionHash;
    } catch (err) {
      this.deps.logger.debug('escrow log scan failed (transaction hashes of earlier commits stay unknown)', {
        jobId: this.job.id,
        message: this.deps.chain.redact(errorText(err)),
      });
    }
  }

  private readonly pendingHashes = new Map<number, string>();
  private halted: string | null = null;

  private halt(reason: string): StepOutcome {
    this.halted ??= reason;
    this.status.lastRpcError = { message: reason, at: new Date().toISOString() };
    if (this.status.settlement.status !== 'settled') {
      this.status.settlement.status = 'failed';
      this.status.settlement.error ??= reason;
    }
    this.deps.logger.error('chain worker halted', { jobId: this.job.id, reason });
    return 'finished';
  }

  private sleep(ms: number, wakeable: boolean): Promise<void> {
    if (this.stopped) return Promise.resolve();
    if (wakeable && this.woken) {
      this.woken = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const finish = () => {
        clearTimeout(timer);
        // Also when the timer ends the wait: a stale wakeUp would swallow a wake() sent during the next step.
        this.wakeUp = null;
        resolve();
      };
      const timer = setTimeout(finish, ms);
      this.wakeUp = () => {
        if (wakeable || this.stopped) {
          this.woken = false;
          finish();
        }
      };
    });
  }
}

/** What became of a dispute of this job's settlement, from the escrow's state. */
function disputeOf(onChain: JobState, ourRoot: string | undefined): NonNullable<SettlementStatus['dispute']> {
  if (onChain.status === EscrowStatus.Disputed) return 'pending';
  if (onChain.haircut) return 'expired';
  return ourRoot && ourRoot.toLowerCase() === onChain.payoutRoot.toLowerCase() ? 'confirmed' : 'corrected';
}

function errorText(err: unknown): string {
  const e = err as { shortMessage?: string; message?: string; code?: string };
  return String(e?.shortMessage ?? e?.message ?? err).slice(0, 500);
}
