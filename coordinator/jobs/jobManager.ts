import { randomBytes } from 'node:crypto';
import { contentHash, encodeTensors } from '../../shared/codec/modelCodec';
import { manifestOf, type NamedTensor, totalParameters } from '../../shared/codec/tensors';
import { privacyPlanOf } from '../../shared/aggregation/privateUpdate';
import { TributaryError, toTributaryError } from '../../shared/errors';
import { type JobSpec, JobSpecSchema } from '../../shared/schemas/jobSpec';
import type { JoinResult, PayoutBinding } from '../../shared/schemas/messages';
import type { ClientResult } from '../../shared/schemas/protocol';
import type { CoordinatorAggregationMode, RoleMessage, RoundMessage } from '../aggregation/aggregationMode';
import { type CoordinatorModeOverrides, CoordinatorModes } from '../aggregation/registry';
import type { Logger } from '../logger';
import type { AdmissionCheck, GlobalModelEvaluator, JobObserver, RoundCompletedEvent, RoundSealer } from '../ports';
import { assertPrivacyHonoured, initialPrivacyState } from '../privacy/jobPrivacy';
import type { JobLeases } from '../cluster/jobLeases';
import { JobRunner } from '../rounds/jobRunner';
import { completeClusterCommit } from '../rounds/roundCommit';
import { announceJobFinished } from '../rounds/roundNotices';
import type { JobRecord, Store } from '../store/store';
import { createStrategy } from '../strategy/createStrategy';
import { assertRobustRuleUsable } from '../strategy/robust/requirements';
import type { ClientDirectory, ClientLink } from '../transport/clientDirectory';
import { claimJobSlots } from './jobClaims';
import { assertJobWithinLimits, type JobLimits } from './jobLimits';

/** Who creates a job (REST: the authenticated principal). */
export interface CreateJobOptions {
  /** The owning identity (coordinator/auth principal id); absent for jobs the operator creates in process. */
  owner?: string;
  /**
   * Pending or running jobs `owner` may have, cluster-wide (claimed in the store with the job,
   * jobClaims.ts); unlimited when absent.
   */
  maxActiveJobs?: number;
}

/** Builds a job's initial model (the TF.js implementation: evaluation/tensorflowModels.ts). */
export interface ModelFactory {
  initialWeights(spec: JobSpec): Promise<NamedTensor[]>;
}

/** A rule a new job's spec must pass beyond its schema (e.g. the chain: an escrow this coordinator can serve). */
export type CreationCheck = (spec: JobSpec) => Promise<void> | void;

export interface JobManagerDeps {
  store: Store;
  directory: ClientDirectory;
  logger: Logger;
  chunkBytes: number;
  evaluator: GlobalModelEvaluator;
  models: ModelFactory;
  /** Operator caps checked from the spec before the model is built. @default DEFAULT_JOB_LIMITS */
  limits?: JobLimits;
  /** Told how long each round state lasted, for every job (metrics). */
  onRoundPhase?: (state: string, seconds: number) => void;
  /** Signs each committed round's transcript (coordinator/transcript/). @default none */
  sealer?: RoundSealer;
  /** Mode factories that replace the registry's for this coordinator (see StartOptions.modes). @default none */
  modes?: CoordinatorModeOverrides;
  /**
   * Clustered coordinators (coordinator/cluster/): a job runs on the node holding its lease, commits
   * are fenced by the lease token, and the other nodes take over a job whose lease expired.
   * @default a single coordinator: every running job runs here
   */
  cluster?: JobLeases;
}

/**
 * Creates jobs, admits providers, owns one round runner per running job, and resumes running jobs
 * after a restart. What other parts of the coordinator add is registered at composition: creation
 * checks (`checkCreation`), admission checks (`admit`) and observers (`observe`: job created, round
 * committed, job ended). Aggregation modes are looked up once per job (CoordinatorModes).
 *
 * In a cluster (`deps.cluster`), a runner starts only under the job's lease; `resumeRunningJobs` (on
 * start and then every `scanMs`) takes over running jobs whose lease expired, after completing the
 * last commit the job's log holds. Joins and round messages for a job another node runs are answered
 * with JOB_ELSEWHERE and that node's URL.
 */
export class JobManager {
  private readonly runners = new Map<string, { runner: JobRunner; done: Promise<JobRecord> }>();
  private readonly observers: JobObserver[] = [];
  private readonly admissions: AdmissionCheck[] = [];
  private readonly creationChecks: CreationCheck[] = [];
  /** Jobs this node is taking over right now (a scan must not start a second runner). */
  private readonly starting = new Set<string>();
  private scanTimer: NodeJS.Timeout | null = null;
  private stopping = false;
  readonly modes: CoordinatorModes;

  constructor(private readonly deps: JobManagerDeps) {
    const environment = { directory: deps.directory, logger: deps.logger, now: () => Date.now() };
    this.modes = new CoordinatorModes(environment, deps.modes);
  }

  /** Registers an observer of job creation, committed rounds and job ends. */
  observe(observer: JobObserver): void {
    this.observers.push(observer);
  }

  /** Registers a rule every provider must pass at join, in registration order. */
  admit(check: AdmissionCheck): void {
    this.admissions.push(check);
  }

  /** Registers a rule every new job must pass. */
  checkCreation(check: CreationCheck): void {
    this.creationChecks.push(check);
  }

  /** The aggregation mode of a job. */
  modeOf(job: JobRecord): CoordinatorAggregationMode {
    return this.modes.of(job.spec);
  }

  /** Validates the spec, builds and checkpoints the initial model, and starts the job. */
  async createJob(input: unknown, options: CreateJobOptions = {}): Promise<JobRecord> {
    const parsed = JobSpecSchema.safeParse(input);
    if (!parsed.success) {
      const e = toTributaryError(parsed.error);
      throw new TributaryError('JOB_SPEC_INVALID', e.message.replace(/^Invalid input/, 'Invalid job spec'), {
        details: e.details,
      });
    }
    const spec = parsed.data;
    const mode = this.modes.of(spec);
    // Size and scoring cost from the spec alone: refused before any weight exists.
    assertJobWithinLimits(spec, this.deps.limits);
    assertRobustRuleUsable(spec, mode.parts(spec));
    assertPrivacyHonoured(spec, mode);
    for (const check of this.creationChecks) await check(spec);
    const id = `job_${randomBytes(9).toString('base64url')}`;
    // Cluster-wide rules (one job per escrow job, the owner's quota), claimed before anything is written.
    const quota =
      options.owner !== undefined && options.maxActiveJobs !== undefined
        ? { owner: options.owner, limit: options.maxActiveJobs }
        : undefined;
    const release = await claimJobSlots(this.deps.store, id, spec, quota);
    let job: JobRecord;
    try {
      job = await this.writeNewJob(id, spec, mode, options);
    } catch (err) {
      // A failed creation burns neither the escrow job nor a quota slot (if this fails too, they free after CREATION_CLAIM_PENDING_MS).
      await release().catch(() => {});
      throw err;
    }
    if (job.status === 'running') await this.startUnderLease(job);
    for (const o of this.observers) o.jobCreated?.(job);
    this.deps.logger.info('job created', { jobId: job.id, name: spec.name, rounds: spec.rounds });
    return job;
  }

  /** Builds the initial model, checkpoints it and stores the job record. */
  private async writeNewJob(
    id: string,
    spec: JobSpec,
    mode: CoordinatorAggregationMode,
    options: CreateJobOptions,
  ): Promise<JobRecord> {
    const weights = await this.deps.models.initialWeights(spec);
    const parameters = totalParameters(manifestOf(weights));
    mode.assertModelFits(spec, parameters);
    // The budget against the model and the rest of the spec (JOB_SPEC_INVALID, PRIVACY_BUDGET_UNREACHABLE).
    const privacyPlan = privacyPlanOf(spec, parameters);
    const bytes = encodeTensors(weights);
    const now = new Date();
    const job: JobRecord = {
      id,
      spec,
      // A paid job recruits only once its escrow holds the budget (the chain observer activates it).
      status: spec.chain ? 'pending' : 'running',
      currentRound: 0,
      modelHash: contentHash(bytes),
      weightManifest: manifestOf(weights),
      ...(options.owner !== undefined ? { owner: options.owner } : {}),
      visibility: spec.visibility ?? (spec.chain ? 'private' : 'public'),
      ...(privacyPlan ? { privacy: initialPrivacyState(privacyPlan) } : {}),
      createdAt: now,
      updatedAt: now,
    };
    await this.deps.store.saveCheckpoint({
      jobId: job.id,
      round: 0,
      modelHash: job.modelHash,
      weights: bytes,
      createdAt: now,
    });
    await this.deps.store.createJob(job);
    return job;
  }

  /**
   * Starts a runner for every job the store says is running (after a crash or restart); in a cluster,
   * only for those whose lease this node takes (free or expired). Returns the ids of the jobs it runs.
   */
  async resumeRunningJobs(): Promise<string[]> {
    const running = await this.deps.store.listJobs({ status: 'running' });
    for (const job of running) {
      if (!this.runners.has(job.id) && !this.starting.has(job.id)) {
        if (!this.deps.cluster)
          this.deps.logger.info('resuming job', { jobId: job.id, fromRound: job.currentRound + 1 });
        await this.startUnderLease(job);
      }
    }
    return running.filter((j) => this.runners.has(j.id)).map((j) => j.id);
  }

  /** Clustered: looks for jobs to take over every `scanMs` until stop(). Resumes once at once. */
  async joinCluster(): Promise<void> {
    const cluster = this.deps.cluster;
    if (!cluster) return;
    await this.resumeRunningJobs();
    const scan = () => {
      this.resumeRunningJobs()
        .catch((err) => this.deps.logger.error('cluster scan failed', { message: String(err) }))
        .finally(() => {
          if (!this.stopping) this.scanTimer = setTimeout(scan, cluster.scanMs).unref();
        });
    };
    this.scanTimer = setTimeout(scan, cluster.scanMs).unref();
  }

  /** Which node runs the job, for a job this node does not run: JOB_ELSEWHERE, or JOB_NOT_RUNNING if none does. */
  private async elsewhere(job: JobRecord): Promise<TributaryError> {
    const ownerUrl = await this.deps.cluster?.ownerUrl(job.id);
    if (ownerUrl) {
      return new TributaryError('JOB_ELSEWHERE', `Job ${job.id} runs on another node of the cluster: ${ownerUrl}.`, {
        details: { ownerUrl },
      });
    }
    // Its owner died and no node has taken it over yet: a transient state, retried like a store hiccup.
    return new TributaryError('STORE_UNAVAILABLE', `Job ${job.id} is being taken over by another node; retry shortly.`);
  }

  async getJob(jobId: string): Promise<JobRecord> {
    const job = await this.deps.store.getJob(jobId);
    if (!job) throw new TributaryError('JOB_NOT_FOUND', `No job with id "${jobId}".`);
    return job;
  }

  /** Starts a `pending` chain job once its escrow is funded (idempotent). */
  async activateJob(jobId: string): Promise<void> {
    let job = await this.getJob(jobId);
    if (job.status === 'pending') job = await this.deps.store.updateJob(jobId, { status: 'running' });
    if (job.status === 'running' && !this.runners.has(jobId)) {
      this.deps.logger.info('job activated', { jobId });
      await this.startUnderLease(job);
    }
  }

  /**
   * Stops a pending or running job for good: its runner stops (the current round is abandoned) and
   * the job becomes `failed` with `reason`. JOB_NOT_RUNNING if it has already finished. The caller
   * checks who may cancel (a chain job's buyer: ChainService.cancelJob).
   */
  async cancelJob(jobId: string, reason: string): Promise<JobRecord> {
    const job = await this.getJob(jobId);
    if (job.status !== 'pending' && job.status !== 'running') {
      throw new TributaryError(
        'JOB_NOT_RUNNING',
        `Job ${jobId} is ${job.status}; only a pending or running job can be cancelled.`,
      );
    }
    const entry = this.runners.get(jobId);
    if (entry) {
      entry.runner.stop();
      await entry.done;
    }
    // Clustered, and another node runs it: preempt its lease first, so that node can commit nothing
    // more (its next write is refused, its heartbeat sees the new token and stops its runner).
    const cluster = this.deps.cluster;
    const preempted = !entry && job.status === 'running' && cluster ? await cluster.preempt(jobId) : null;
    if (preempted) await completeClusterCommit(this.deps.store, await this.getJob(jobId), preempted.token);
    // The runner may have finished the job while it stopped: then that outcome stands.
    const now = await this.getJob(jobId);
    if (now.status !== 'pending' && now.status !== 'running') return now;
    this.deps.logger.info('job cancelled', { jobId, reason });
    const cancelled = await this.deps.store.updateJob(jobId, { status: 'failed', failureReason: reason });
    if (preempted) await cluster?.releaseToken(jobId, preempted.token);
    announceJobFinished(this.deps.directory, jobId, 'failed', reason);
    for (const o of this.observers) o.jobEnded?.(cancelled);
    return cancelled;
  }

  /** A job that accepts participants now; JOB_NOT_FUNDED / JOB_NOT_RUNNING otherwise. */
  async requireJoinable(jobId: string): Promise<JobRecord> {
    const job = await this.getJob(jobId);
    if (job.status === 'pending' && job.spec.chain) {
      throw new TributaryError(
        'JOB_NOT_FUNDED',
        `Job ${jobId} is waiting for its escrow (${job.spec.chain.escrow}, job ${job.spec.chain.jobId}) to hold the budget; joins open once it does.`,
      );
    }
    if (job.status === 'running' && !this.runners.has(jobId) && this.deps.cluster) throw await this.elsewhere(job);
    if (job.status !== 'running' || !this.runners.has(jobId)) {
      throw new TributaryError(
        'JOB_NOT_RUNNING',
        `Job ${jobId} is ${job.status}; only running jobs accept participants.`,
        {
          details: { status: job.status, reason: job.failureReason },
        },
      );
    }
    return job;
  }

  /**
   * A provider joins (or rejoins after a reconnect): the job must be running and every admission
   * check must pass before anything is recorded; then the client becomes a member.
   */
  async join(jobId: string, clientId: string, body: { payout?: PayoutBinding }): Promise<JoinResult> {
    const job = await this.requireJoinable(jobId);
    let payoutAddress: string | undefined;
    for (const check of this.admissions) {
      const admitted = await check({ job, clientId, ...(body.payout ? { payout: body.payout } : {}) });
      payoutAddress = admitted?.payoutAddress ?? payoutAddress;
    }
    // Stored before it counts: a join the store refuses (STORE_BUSY, STORE_UNAVAILABLE) fails with that
    // error and leaves the client out of the round's members, so it is never half-joined.
    await this.deps.store.recordJoin({
      jobId: job.id,
      clientId,
      at: new Date(),
      ...(payoutAddress ? { payoutAddress } : {}),
    });
    this.deps.directory.join(clientId, job.id);
    return joinResultOf(job);
  }

  /** A message of another role of the job's mode (e.g. the paillier key holder); the mode answers or refuses. */
  async handleRoleMessage(
    clientId: string,
    link: ClientLink,
    jobId: string,
    round: number,
    message: RoleMessage,
  ): Promise<ClientResult<RoleMessage['name']>> {
    const job = message.name === 'keyholderJoin' ? await this.requireJoinable(jobId) : await this.getJob(jobId);
    const mode = this.modeOf(job);
    if (!mode.handleRoleMessage) {
      throw new TributaryError('VALIDATION_FAILED', `Jobs in mode "${mode.name}" have no ${message.name} role.`);
    }
    return mode.handleRoleMessage({ job, clientId, round, link }, message);
  }

  /** A verified round message of a provider that joined the job, for its running round. */
  receiveRoundMessage(clientId: string, jobId: string, round: number, message: RoundMessage): void {
    const entry = this.runners.get(jobId);
    if (!entry && this.deps.cluster) {
      // The owner's URL is what the client needs; a round message is never forwarded (docs/cluster.md).
      throw new TributaryError('JOB_ELSEWHERE', `Job ${jobId} is not run by this node; join it again.`, {
        details: { ownerUrl: '' },
      });
    }
    if (!entry) throw new TributaryError('JOB_NOT_FOUND', `No running job with id "${jobId}".`);
    if (!this.deps.directory.hasJoined(clientId, jobId)) {
      throw new TributaryError('JOB_NOT_JOINED', `Join job ${jobId} before sending updates.`);
    }
    entry.runner.receive(clientId, round, message);
  }

  /** A connection closed: modes drop whatever role it held. */
  connectionClosed(link: ClientLink): void {
    for (const mode of this.modes.all()) mode.connectionClosed?.(link);
  }

  /** Codec bytes of the global model after `round` (0 = initial). */
  async modelBytes(jobId: string, round: number): Promise<Buffer> {
    const cached = this.runners.get(jobId)?.runner.modelBytesFor(round);
    if (cached) return cached;
    await this.getJob(jobId);
    const checkpoint = await this.deps.store.loadCheckpoint(jobId, round);
    if (!checkpoint) throw new TributaryError('JOB_NO_MODEL', `Job ${jobId} has no model for round ${round}.`);
    return Buffer.from(checkpoint.weights);
  }

  /** Resolves when the job's runner stops (completed, failed or stopped). */
  async waitForJob(jobId: string): Promise<JobRecord> {
    const entry = this.runners.get(jobId);
    return entry ? entry.done : this.getJob(jobId);
  }

  runnerOf(jobId: string): JobRunner | undefined {
    return this.runners.get(jobId)?.runner;
  }

  /**
   * Stops every runner; running jobs stay `running` in the store so a restart resumes them. In a
   * cluster, this node's leases are released, so the other nodes take its jobs over at their next scan.
   */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.scanTimer) clearTimeout(this.scanTimer);
    const entries = [...this.runners.values()];
    for (const e of entries) e.runner.stop();
    for (const mode of this.modes.all()) mode.close?.();
    await Promise.all(entries.map((e) => e.done));
    await this.deps.cluster?.stop();
  }

  /**
   * Starts the job's runner: at once on a single coordinator; in a cluster, only if this node takes
   * the job's lease, and from the last commit the job's log holds (a former owner may have died
   * between its commit point and the round pointer).
   */
  private async startUnderLease(job: JobRecord): Promise<void> {
    const cluster = this.deps.cluster;
    if (!cluster) {
      this.start(job);
      return;
    }
    if (this.stopping || this.starting.has(job.id) || this.runners.has(job.id)) return;
    this.starting.add(job.id);
    try {
      const lease = await cluster.acquire(job.id);
      if (!lease) return;
      let current: JobRecord;
      try {
        current = await completeClusterCommit(this.deps.store, (await this.getJob(job.id)) ?? job, lease.token);
      } catch (err) {
        await cluster.release(job.id);
        throw err;
      }
      if (current.status !== 'running' || this.stopping) {
        await this.deps.store.releaseJobLease(job.id, cluster.nodeId, lease.token);
        return;
      }
      this.deps.logger.info('resuming job', { jobId: job.id, fromRound: current.currentRound + 1, token: lease.token });
      const runner = this.start(current, { token: lease.token, holds: () => cluster.holds(job.id, lease.token) });
      cluster.keep(job.id, lease, () => {
        runner.stop();
        this.sendMembersAway(job.id);
      });
    } finally {
      this.starting.delete(job.id);
    }
  }

  /** Closes the connections of a job's providers here: they reconnect, rejoin and land at its owner (or hear it ended). */
  private sendMembersAway(jobId: string): void {
    for (const clientId of this.deps.directory.members(jobId)) {
      this.deps.directory.link(clientId)?.close?.(`job ${jobId} is not run by this node any more`);
    }
  }

  private start(job: JobRecord, lease?: { token: number; holds(): Promise<boolean> }): JobRunner {
    const strategy = createStrategy(job.spec);
    const runner = new JobRunner(job, {
      store: this.deps.store,
      directory: this.deps.directory,
      strategy,
      mode: this.modeOf(job),
      evaluator: this.deps.evaluator,
      logger: this.deps.logger,
      chunkBytes: this.deps.chunkBytes,
      // Asked per round: a validation set (contribution scoring) may arrive after the job started.
      // Never under DP: only the noised sum may leave a private round.
      keepParts: () =>
        job.spec.privacy === undefined &&
        (job.spec.strategy.robust !== undefined || this.observers.some((o) => o.wantsParts?.(job.id))),
      onRoundCommitted: (event) => this.notifyRoundCommitted(event),
      ...(this.deps.onRoundPhase ? { onPhase: this.deps.onRoundPhase } : {}),
      ...(this.deps.sealer ? { sealer: this.deps.sealer } : {}),
      ...(lease ? { lease } : {}),
    });
    const done = runner
      .run()
      .finally(async () => {
        this.runners.delete(job.id);
        if (!lease) return;
        // A runner stopped by a refused commit (preempted by a cancel, or taken over) leaves its
        // providers connected here, waiting for tasks that will not come: send them on.
        if (!this.stopping && !(await lease.holds().catch(() => false))) this.sendMembersAway(job.id);
        // Whatever ended the runner, the lease goes back (a lost one is refused by the store anyway).
        void this.deps.cluster?.release(job.id);
      })
      .then((finished) => {
        for (const o of this.observers) o.jobEnded?.(finished);
        return finished;
      });
    this.runners.set(job.id, { runner, done });
    return runner;
  }

  /** Every observer in order; one observer's failure is logged and never reaches the others or the round. */
  private async notifyRoundCommitted(event: RoundCompletedEvent): Promise<void> {
    for (const o of this.observers) {
      try {
        await o.roundCommitted?.(event);
      } catch (err) {
        this.deps.logger.error('round observer failed', {
          jobId: event.job.id,
          round: event.round.round,
          message: String(err),
        });
      }
    }
  }
}

/** What a client learns when it joins. */
export function joinResultOf(job: JobRecord): JoinResult {
  return {
    jobId: job.id,
    spec: job.spec,
    status: job.status,
    currentRound: job.currentRound,
    weightManifest: job.weightManifest,
  };
}
