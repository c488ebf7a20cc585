import { getAddress, isAddress } from 'ethers';
import { TributaryError } from '../../shared/errors';
import type { JobSpec } from '../../shared/schemas/jobSpec';
import type { CoordinatorConfig } from '../config';
import type { Logger } from '../logger';
import type { JobObserver, RoundCompletedEvent } from '../ports';
import type { JobRecord, PayoutPlanRecord, Store } from '../store/store';
import { ChainConnection } from './chainConnection';
import { initialChainJobStatus, type ChainJobStatus } from './chainJobStatus';
import { ChainJobWorker, type JobControl } from './chainJobWorker';
import { participationScores, type ScoresFor } from './participationScores';

export interface ChainServiceOptions {
  config: CoordinatorConfig;
  /** The jobs the workers read and activate (the job manager). */
  jobs: JobControl;
  store: Store;
  logger: Logger;
  /** Contributor scores at job end. @default participation (rounds completed) */
  scoresFor?: ScoresFor;
  /** Longest wait for one chain request. @default 15000 */
  requestTimeoutMs?: number;
}

/** One contributor's payout, as GET /v1/jobs/:id/payouts/:address serves it. */
export interface PayoutView {
  jobId: string;
  escrow: string;
  chainId: number;
  onChainJobId: string;
  account: string;
  amountWei: string;
  proof: string[];
  score: number;
  scoreLabel: string;
  clientIds: string[];
}

/**
 * The coordinator's chain integration: one ChainJobWorker per job with a `chain` config (funding
 * watch, per-round commits, settlement), fed by the round-completed hook without ever blocking it,
 * resumed from the store and the chain after a restart, and the source of the REST chain views.
 */
export class ChainService {
  readonly connection: ChainConnection | null;
  private readonly workers = new Map<string, ChainJobWorker>();
  private readonly scoresFor: ScoresFor;

  constructor(private readonly options: ChainServiceOptions) {
    const { config } = options;
    this.connection =
      config.rpcUrl && config.coordinatorPrivateKey
        ? new ChainConnection({
            rpcUrl: config.rpcUrl,
            privateKey: config.coordinatorPrivateKey,
            pollingMs: Math.min(config.chainPollMs, 1000),
            requestTimeoutMs: Math.min(options.requestTimeoutMs ?? 15_000, config.chainTxTimeoutMs),
            txTimeoutMs: config.chainTxTimeoutMs,
          })
        : null;
    this.scoresFor = options.scoresFor ?? participationScores(options.store);
  }

  get enabled(): boolean {
    return this.connection !== null;
  }

  /**
   * Refuses a chain job this coordinator cannot serve (no RPC URL or key configured), or whose
   * escrow job another job is already bound to: two jobs committing into one escrow job would mix
   * their rounds and settle each other's budget.
   */
  async assertUsable(spec: JobSpec): Promise<void> {
    const chain = spec.chain;
    if (!chain) return;
    if (!this.connection) {
      throw new TributaryError(
        'JOB_SPEC_INVALID',
        'chain: this coordinator has no chain configured (set TRIBUTARY_RPC_URL and TRIBUTARY_COORDINATOR_KEY) and cannot run jobs with a chain config.',
      );
    }
    const taken = (await this.options.store.listJobs()).find(
      (j) =>
        j.spec.chain &&
        j.spec.chain.chainId === chain.chainId &&
        j.spec.chain.jobId === chain.jobId &&
        j.spec.chain.escrow.toLowerCase() === chain.escrow.toLowerCase(),
    );
    if (taken) {
      throw new TributaryError(
        'JOB_SPEC_INVALID',
        `chain: escrow job ${chain.jobId} of ${chain.escrow} (chain ${chain.chainId}) already pays job ${taken.id}; create a new escrow job.`,
      );
    }
  }

  /** Starts the worker of a chain job (no-op for other jobs or if it already runs). */
  track(job: JobRecord): void {
    if (!job.spec.chain || !this.connection || this.workers.has(job.id)) return;
    const { config, store, logger } = this.options;
    const worker = new ChainJobWorker(job, {
      chain: this.connection,
      store,
      jobs: this.options.jobs,
      scoresFor: this.scoresFor,
      logger,
      retryBaseMs: config.chainRetryBaseMs,
      retryMaxMs: config.chainRetryMaxMs,
      pollMs: config.chainPollMs,
    });
    this.workers.set(job.id, worker);
    worker.start();
  }

  /**
   * The chain's view of job life (registered with the job manager): a new paid job gets its worker
   * (funding watch); a committed round wakes the worker and returns at once (the chain never blocks a
   * round); a job that ended (completed or failed) settles without waiting for the next poll.
   */
  readonly observer: JobObserver = {
    jobCreated: (job) => {
      if (job.status === 'pending') this.track(job);
    },
    roundCommitted: (event: RoundCompletedEvent) => this.workers.get(event.job.id)?.wake(),
    jobEnded: (job) => {
      if (job.status !== 'running') this.workers.get(job.id)?.wake();
    },
  };

  /** After a restart: a worker for every chain job (each reads the chain and picks up where it was). */
  async resume(): Promise<void> {
    if (!this.connection) return;
    for (const job of await this.options.store.listJobs()) if (job.spec.chain) this.track(job);
  }

  /** Resolves when the job's worker has settled (or halted); for tests and the demo. */
  async whenSettled(jobId: string): Promise<ChainJobStatus> {
    const worker = this.workers.get(jobId);
    if (!worker) throw new TributaryError('NOT_FOUND', `Job ${jobId} has no chain worker.`);
    await worker.whenDone();
    return worker.snapshot();
  }

  /** GET /v1/jobs/:id/chain */
  status(job: JobRecord): ChainJobStatus {
    const chain = requireChain(job);
    const worker = this.workers.get(job.id);
    if (worker) return worker.snapshot();
    const status = initialChainJobStatus(chain, this.connection?.address ?? '', job.status !== 'pending');
    status.settlement.error = 'this coordinator has no chain configured';
    return status;
  }

  /** Every payout of a settled job. */
  async payouts(job: JobRecord): Promise<PayoutView[]> {
    const plan = await this.settledPlan(job);
    return plan.allocations.map((a) => this.view(job, plan, a));
  }

  /** GET /v1/jobs/:id/payouts/:address */
  async payout(job: JobRecord, address: string): Promise<PayoutView> {
    if (!isAddress(address))
      throw new TributaryError(
        'VALIDATION_FAILED',
        `"${address}" is not an Ethereum address (0x followed by 40 hex digits).`,
      );
    const account = getAddress(address.toLowerCase());
    const plan = await this.settledPlan(job);
    const allocation = plan.allocations.find((a) => a.account === account);
    if (!allocation)
      throw new TributaryError('PAYOUT_NOT_FOUND', `${account} has no payout in job ${job.id}'s settlement.`);
    return this.view(job, plan, allocation);
  }

  async stop(): Promise<void> {
    await Promise.all([...this.workers.values()].map((w) => w.stop()));
    this.workers.clear();
    this.connection?.close();
  }

  private async settledPlan(job: JobRecord): Promise<PayoutPlanRecord> {
    requireChain(job);
    const settled = this.workers.get(job.id)?.status.settlement.status === 'settled';
    const plan = settled ? await this.options.store.loadPayoutPlan(job.id) : null;
    if (!plan)
      throw new TributaryError(
        'PAYOUT_NOT_READY',
        `Job ${job.id} has not settled on chain yet; payouts are published after settlement.`,
      );
    return plan;
  }

  private view(job: JobRecord, plan: PayoutPlanRecord, a: PayoutPlanRecord['allocations'][number]): PayoutView {
    const chain = requireChain(job);
    return {
      jobId: job.id,
      escrow: chain.escrow,
      chainId: chain.chainId,
      onChainJobId: chain.jobId,
      account: a.account,
      amountWei: a.amountWei,
      proof: a.proof,
      score: a.score,
      scoreLabel: plan.scoreLabel,
      clientIds: a.clientIds,
    };
  }
}

function requireChain(job: JobRecord) {
  if (!job.spec.chain) throw new TributaryError('PAYOUT_NOT_FOUND', `Job ${job.id} has no chain config.`);
  return job.spec.chain;
}
