import { getAddress, isAddress } from 'ethers';
import { EscrowRevertError, JobStatus as EscrowStatus, type JobState } from '../../contracts/escrow';
import { cancelRequestOf, checkEscrowBinding, verifyCancelJob } from '../../contracts/escrowBinding';
import { TributaryError } from '../../shared/errors';
import type { ChainSpec, JobSpec } from '../../shared/schemas/jobSpec';
import type { JobLeases } from '../cluster/jobLeases';
import type { CoordinatorConfig } from '../config';
import type { Logger } from '../logger';
import type { JobObserver, RoundCompletedEvent } from '../ports';
import type { JobRecord, PayoutPlanRecord, Store } from '../store/store';
import { ChainConnection } from './chainConnection';
import { initialChainJobStatus, type ChainJobStatus } from './chainJobStatus';
import { ChainJobWorker, type ChainJobWorkerDeps, type JobControl } from './chainJobWorker';
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
  /** Told once per settlement this coordinator posts (the audit trail). */
  onSettlementPosted?: ChainJobWorkerDeps['onSettlementPosted'];
  /** Told of every chain transaction (metrics). */
  onTransaction?: (kind: string, seconds: number, outcome: 'ok' | 'reverted' | 'failed') => void;
  /**
   * Clustered: this node's chain leases (a JobLeases of kind `chain`). A worker then runs only under
   * its job's chain lease, and its status is stored for every node's REST views.
   */
  leases?: JobLeases;
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
 *
 * In a cluster (`leases`) a job's worker runs on the node holding the job's chain lease (a lease of
 * its own, apart from the runner's: the chain work outlives the job and may run on any node). Every
 * node scans for chain jobs whose chain work is not done and whose chain lease is free or expired,
 * takes the lease and starts the worker; the heartbeat stops the worker when the lease is lost; a
 * finished worker stores its final status (`done`) and releases the lease. Each worker's status is
 * stored, fenced by its lease token, so every node serves the chain and payout views. The escrow
 * makes a round commit idempotent and refuses a second settlement, so a takeover never double-posts;
 * the lease keeps a second worker from trying in the first place.
 */
export class ChainService {
  readonly connection: ChainConnection | null;
  private readonly workers = new Map<string, ChainJobWorker>();
  private readonly scoresFor: ScoresFor;
  private scanTimer: NodeJS.Timeout | undefined;
  private stopping = false;
  private readonly claiming = new Set<string>();
  private readonly doneJobs = new Set<string>();

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
            ...(options.onTransaction ? { onTransaction: options.onTransaction } : {}),
          })
        : null;
    this.scoresFor = options.scoresFor ?? participationScores(options.store);
  }

  /** Clustered: this node's chain leases (the paid jobs whose worker runs here). */
  get leases(): JobLeases | undefined {
    return this.options.leases;
  }

  get enabled(): boolean {
    return this.connection !== null;
  }

  /** This coordinator's chain address (what a buyer names as `coordinator` and signs for); null without a chain. */
  get coordinatorAddress(): string | null {
    return this.connection?.address ?? null;
  }

  /**
   * Refuses a chain job this coordinator cannot serve (no RPC URL or key configured), whose escrow
   * job another job is already bound to (two jobs committing into one escrow job would mix their
   * rounds and settle each other's budget), or whose escrow binding does not hold on chain (see
   * `verifyBinding`). Nothing is stored before this passes. The "already bound" check here is a
   * fast refusal (and covers jobs bound before claim slots existed); the binding itself is claimed
   * atomically in the store when the job is created (coordinator/jobs/jobClaims.ts), so concurrent
   * posts at one node or several, all passing this check, still bind one job.
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
        'ESCROW_ALREADY_BOUND',
        `chain: escrow job ${chain.jobId} of ${chain.escrow} (chain ${chain.chainId}) already pays job ${taken.id}; create a new escrow job.`,
      );
    }
    await this.verifyBinding({ ...spec, chain });
  }

  /**
   * Checks a chain job's escrow binding against the chain (issue 11.1): the RPC is on the spec's
   * chain, the escrow job exists (ESCROW_JOB_UNKNOWN) and is open (ESCROW_JOB_CLOSED), names this
   * coordinator, carries the spec's canonical hash (ESCROW_SPEC_MISMATCH), and its buyer signed
   * `chain.authorization` (ESCROW_BINDING_INVALID). CHAIN_UNAVAILABLE when the RPC cannot answer.
   * Returns the escrow job as read.
   */
  async verifyBinding(spec: JobSpec & { chain: ChainSpec }): Promise<JobState> {
    const connection = this.requireConnection();
    const onChain = await this.readEscrowJob(spec.chain);
    if (onChain.status !== EscrowStatus.Open) {
      throw new TributaryError(
        'ESCROW_JOB_CLOSED',
        `Escrow job ${spec.chain.jobId} of ${spec.chain.escrow} is ${escrowStatusName(onChain.status)}; it can fund no new job.`,
      );
    }
    checkEscrowBinding(spec, onChain, connection.address);
    return onChain;
  }

  /**
   * Cancels a chain job at its escrow buyer's request: `signature` is the buyer's EIP-712
   * `CancelJob` signature (contracts/escrowBinding.ts `signCancelJob`) over this job's id, its
   * escrow job and this coordinator. Only a pending or running job whose escrow job has not
   * settled can be cancelled. The runner stops and the job becomes `failed`; the chain worker then
   * settles the rounds already committed (the providers are paid for work done) or, with none,
   * releases the whole budget back to the buyer at once.
   */
  async cancelJob(job: JobRecord, signature: string): Promise<JobRecord> {
    const chain = requireChain(job);
    const connection = this.requireConnection();
    const signer = verifyCancelJob(cancelRequestOf(job.id, chain, connection.address), signature);
    const onChain = await this.readEscrowJob(chain);
    if (signer !== getAddress(onChain.buyer)) {
      throw new TributaryError(
        'ESCROW_BINDING_INVALID',
        `The cancel request is signed by ${signer}; only escrow job ${chain.jobId}'s buyer ${getAddress(onChain.buyer)} may cancel job ${job.id}.`,
      );
    }
    if (onChain.status !== EscrowStatus.Open) {
      throw new TributaryError(
        'ESCROW_JOB_CLOSED',
        `Job ${job.id}'s escrow job is ${escrowStatusName(onChain.status)}; a settled job cannot be cancelled.`,
      );
    }
    const cancelled = await this.options.jobs.cancelJob(job.id, `cancelled by the escrow buyer ${signer}`);
    // The worker here settles at once; a worker on another node (clustered) sees the job failed at its next poll.
    this.workers.get(job.id)?.wake();
    this.options.logger.info('job cancelled by its escrow buyer', { jobId: job.id, buyer: signer });
    return cancelled;
  }

  /**
   * Starts the worker of a chain job (no-op for other jobs or if it already runs); clustered, only if
   * this node takes the job's chain lease.
   */
  track(job: JobRecord): void {
    if (!job.spec.chain || !this.connection || this.workers.has(job.id)) return;
    if (this.options.leases) {
      void this.claim(job).catch((err) =>
        this.options.logger.error('chain lease claim failed', { jobId: job.id, message: String(err) }),
      );
      return;
    }
    this.startWorker(job);
  }

  /** Clustered: takes the job's chain lease if free or expired, and runs its worker under it. */
  private async claim(job: JobRecord): Promise<void> {
    const leases = this.options.leases!;
    if (this.stopping || this.claiming.has(job.id) || this.workers.has(job.id)) return;
    this.claiming.add(job.id);
    try {
      const lease = await leases.acquire(job.id);
      if (!lease) return;
      if (this.stopping) {
        await leases.releaseToken(job.id, lease.token);
        return;
      }
      const { store } = this.options;
      const worker = this.startWorker(job, {
        holdsLease: () => leases.holds(job.id, lease.token),
        onStatus: (status, done) =>
          store.saveChainState({ jobId: job.id, status, done, fence: lease.token, updatedAt: new Date() }),
      });
      leases.keep(job.id, lease, () => {
        // Another node holds the chain lease now: stop here (its worker reads the chain afresh).
        if (this.workers.get(job.id) === worker) this.workers.delete(job.id);
        void worker.stop();
      });
      void worker.whenDone().then(async () => {
        if (this.workers.get(job.id) !== worker) return;
        this.workers.delete(job.id);
        // Done (settled, released or halted) or stopped: either way another node may go on at once.
        await leases.release(job.id);
      });
    } finally {
      this.claiming.delete(job.id);
    }
  }

  /** Clustered: looks for chain jobs to take on every `scanMs` until stop(); once at once. */
  private async scan(): Promise<void> {
    for (const job of await this.options.store.listJobs()) {
      if (!job.spec.chain || this.workers.has(job.id) || this.doneJobs.has(job.id)) continue;
      // Chain work done (stored by its last holder) stays done: not looked at again by this node.
      if ((await this.options.store.loadChainState(job.id))?.done) this.doneJobs.add(job.id);
      else await this.claim(job);
    }
  }

  private startWorker(
    job: JobRecord,
    cluster: Pick<ChainJobWorkerDeps, 'holdsLease' | 'onStatus'> = {},
  ): ChainJobWorker {
    const { config, store, logger } = this.options;
    const worker = new ChainJobWorker(job, {
      ...cluster,
      chain: this.requireConnection(),
      store,
      jobs: this.options.jobs,
      scoresFor: this.scoresFor,
      logger,
      retryBaseMs: config.chainRetryBaseMs,
      retryMaxMs: config.chainRetryMaxMs,
      pollMs: config.chainPollMs,
      settleMarginSeconds: config.chainSettleMarginSeconds,
      ...(this.options.onSettlementPosted ? { onSettlementPosted: this.options.onSettlementPosted } : {}),
    });
    this.workers.set(job.id, worker);
    worker.start();
    return worker;
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

  /**
   * After a restart: a worker for every chain job (each reads the chain and picks up where it was).
   * Clustered: the scan for chain leases instead, now and every `scanMs`.
   */
  async resume(): Promise<void> {
    if (!this.connection) return;
    const leases = this.options.leases;
    if (!leases) {
      for (const job of await this.options.store.listJobs()) if (job.spec.chain) this.track(job);
      return;
    }
    const scan = () => {
      this.scan()
        .catch((err) => this.options.logger.error('chain lease scan failed', { message: String(err) }))
        .finally(() => {
          if (!this.stopping) this.scanTimer = setTimeout(scan, leases.scanMs).unref();
        });
    };
    await this.scan().catch((err) => this.options.logger.error('chain lease scan failed', { message: String(err) }));
    if (!this.stopping) this.scanTimer = setTimeout(scan, leases.scanMs).unref();
  }

  /** Resolves when the job's worker has settled (or halted); for tests and the demo. */
  async whenSettled(jobId: string): Promise<ChainJobStatus> {
    const worker = this.workers.get(jobId);
    if (!worker) throw new TributaryError('NOT_FOUND', `Job ${jobId} has no chain worker.`);
    await worker.whenDone();
    return worker.snapshot();
  }

  /** The chain status as this node's worker sees it (or the initial one without a worker here). */
  status(job: JobRecord): ChainJobStatus {
    const chain = requireChain(job);
    const worker = this.workers.get(job.id);
    if (worker) return worker.snapshot();
    const status = initialChainJobStatus(chain, this.connection?.address ?? '', job.status !== 'pending');
    status.settlement.error = 'this coordinator has no chain configured';
    return status;
  }

  /**
   * GET /v1/jobs/:id/chain at any node: this node's worker if it runs the job's chain work, else the
   * status the worker's holder stored last (clustered), else `status`.
   */
  async readStatus(job: JobRecord): Promise<ChainJobStatus> {
    requireChain(job);
    if (this.workers.has(job.id)) return this.status(job);
    const stored = await this.options.store.loadChainState(job.id);
    return stored ? stored.status : this.status(job);
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
    this.stopping = true;
    clearTimeout(this.scanTimer);
    await Promise.all([...this.workers.values()].map((w) => w.stop()));
    this.workers.clear();
    await this.options.leases?.stop();
    this.connection?.close();
  }

  private requireConnection(): ChainConnection {
    if (!this.connection)
      throw new TributaryError('CHAIN_UNAVAILABLE', 'This coordinator has no chain configured (TRIBUTARY_RPC_URL).');
    return this.connection;
  }

  /** The escrow job a spec names, with coded errors for a wrong chain, a missing job or a dead RPC. */
  private async readEscrowJob(chain: ChainSpec): Promise<JobState> {
    const connection = this.requireConnection();
    const where = `escrow job ${chain.jobId} of ${chain.escrow} (chain ${chain.chainId})`;
    let chainId: number;
    try {
      chainId = await connection.chainId();
    } catch (err) {
      throw unavailable(connection, err);
    }
    if (chainId !== chain.chainId)
      throw new TributaryError(
        'JOB_SPEC_INVALID',
        `chain.chainId is ${chain.chainId}, but this coordinator's RPC is on chain ${chainId}.`,
      );
    try {
      const escrow = await connection.escrow(chain.escrow);
      return await connection.timed('getJob', escrow.getJob(BigInt(chain.jobId)));
    } catch (err) {
      if (err instanceof EscrowRevertError) {
        throw new TributaryError(
          'ESCROW_JOB_UNKNOWN',
          err.errorName === 'UnknownJob'
            ? `${where} does not exist; the buyer creates and funds it (with this spec's hash) before posting the job.`
            : `${chain.escrow} is not a TributaryEscrow: getJob reverted with ${err.errorName}.`,
        );
      }
      // No contract at the address: the call returns no data and ethers cannot decode it.
      if ((err as { code?: string }).code === 'BAD_DATA')
        throw new TributaryError('ESCROW_JOB_UNKNOWN', `There is no TributaryEscrow at ${chain.escrow}.`);
      throw unavailable(connection, err);
    }
  }

  private async settledPlan(job: JobRecord): Promise<PayoutPlanRecord> {
    requireChain(job);
    const settled = (await this.readStatus(job)).settlement.status === 'settled';
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

function unavailable(connection: ChainConnection, err: unknown): TributaryError {
  const e = err as { shortMessage?: string; message?: string };
  return new TributaryError(
    'CHAIN_UNAVAILABLE',
    `The chain RPC did not answer: ${connection.redact(String(e?.shortMessage ?? e?.message ?? err)).slice(0, 300)}`,
  );
}

function escrowStatusName(status: number): string {
  const names: Record<number, string> = {
    [EscrowStatus.Open]: 'open',
    [EscrowStatus.Settled]: 'settled',
    [EscrowStatus.Disputed]: 'settled and disputed',
    [EscrowStatus.Recovered]: 'recovered by its buyer (or released)',
    [EscrowStatus.Swept]: 'settled and swept',
  };
  return names[status] ?? `in status ${status}`;
}

function requireChain(job: JobRecord) {
  if (!job.spec.chain) throw new TributaryError('PAYOUT_NOT_FOUND', `Job ${job.id} has no chain config.`);
  return job.spec.chain;
}
