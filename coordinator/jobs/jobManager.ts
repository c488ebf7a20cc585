import { randomBytes } from 'node:crypto';
import { contentHash, encodeTensors } from '../../shared/codec/modelCodec';
import { manifestOf, type NamedTensor } from '../../shared/codec/tensors';
import { TributaryError, toTributaryError } from '../../shared/errors';
import {
  JobSpecSchema,
  PAILLIER_MAX_PARAMETERS,
  SECAGG_MAX_PARAMETERS,
  paillierParamsOf,
  type JobSpec,
} from '../../shared/schemas/jobSpec';
import { KeyHolderRegistry } from '../aggregation/keyHolderRegistry';
import { PaillierAggregator } from '../aggregation/paillierAggregator';
import { MAX_CHUNK_BYTES } from '../../shared/schemas/messages';
import { PlaintextAggregator } from '../aggregation/plaintextAggregator';
import type { UpdateAggregatorFactory } from '../aggregation/updateAggregator';
import type { Logger } from '../logger';
import { assertInvitedListingsFit, assertMayJoin } from '../marketplace/jobAccess';
import { JobRunner, type GlobalModelEvaluator, type RoundCompletedEvent } from '../rounds/jobRunner';
import type { JobRecord, Store } from '../store/store';
import { createStrategy } from '../strategy/createStrategy';
import type { ClientDirectory } from '../transport/clientDirectory';
import { EVENTS } from '../../shared/schemas/messages';
import { assertJobWithinLimits, type JobLimits } from './jobLimits';

/** Who creates a job (REST: the authenticated principal) and how it is shown. */
export interface CreateJobOptions {
  /** The owning identity (coordinator/auth principal id); absent for jobs the operator creates in process. */
  owner?: string;
}

/** Builds a job's initial model; the TF.js implementation lives in modelFactory.ts. */
export interface ModelFactory {
  initialWeights(spec: JobSpec): Promise<NamedTensor[]>;
}

export interface JobManagerDeps {
  store: Store;
  directory: ClientDirectory;
  logger: Logger;
  chunkBytes: number;
  evaluator: GlobalModelEvaluator;
  models: ModelFactory;
  onRoundCompleted?: (event: RoundCompletedEvent) => void | Promise<void>;
  /**
   * Escrow integration (coordinator/chain/ChainService): jobs with a `chain` config are created
   * `pending` and handed to `track`, which activates them once the escrow holds the budget.
   */
  chain?: {
    assertUsable(spec: JobSpec): Promise<void>;
    track(job: JobRecord): void;
    onJobFinished(jobId: string): void;
  };
  /** Whether a plaintext (`none`) round of this job keeps each client's update for the round-completed hook (contribution scoring). @default never */
  keepClientUpdates?: (jobId: string) => boolean;
  /** Called when a job's runner returns (the job completed, failed, or the coordinator stopped it). */
  onJobEnded?: (jobId: string) => void;
  /** Operator caps checked from the spec before the model is built. @default DEFAULT_JOB_LIMITS */
  limits?: JobLimits;
}

/** The aggregation mode a job names. Secure modes register here. */
function aggregatorFactory(
  jobId: string,
  spec: JobSpec,
  keyHolders: KeyHolderRegistry,
  keepClientUpdates: (jobId: string) => boolean = () => false,
): UpdateAggregatorFactory {
  switch (spec.secureAggregation) {
    case 'paillier': {
      const options = spec.paillier;
      if (!options) throw new TributaryError('JOB_SPEC_INVALID', 'paillier jobs need the paillier options');
      const params = paillierParamsOf(spec);
      const n = BigInt(`0x${options.publicKey.n}`);
      return (manifest, context) =>
        new PaillierAggregator(manifest, {
          params,
          n,
          decrypt: (aggregate) =>
            keyHolders.decrypt(
              { jobId, round: context?.round ?? 0, attempt: context?.attempt ?? 0, ...aggregate },
              options.decryptTimeoutMs,
            ),
        });
    }
    case 'none':
      // Asked per round: a validation set may arrive after the job started.
      return (manifest) => new PlaintextAggregator(manifest, { keepClientUpdates: keepClientUpdates(jobId) });
    case 'secagg':
      // SecAgg+ rounds aggregate in a SecAggSession (aggregation/secaggSession.ts), never from uploads.
      return () => {
        throw new TributaryError('INTERNAL', 'secagg jobs aggregate in a SecAgg+ session, not from uploaded updates');
      };
  }
}

/** SecAgg+ sends the masked vector (4 bytes per parameter, plus the weight) in at most MAX_SECAGG_PARTS chunks. */
function assertSecAggFits(weights: readonly NamedTensor[]): void {
  const parameters = weights.reduce((n, t) => n + t.data.length, 0);
  if (parameters > SECAGG_MAX_PARAMETERS) {
    throw new TributaryError(
      'JOB_SPEC_INVALID',
      `secureAggregation "secagg" supports models of at most ${SECAGG_MAX_PARAMETERS} parameters; this model has ${parameters}. Use "none" or a smaller model.`,
      { details: { parameters, maxParameters: SECAGG_MAX_PARAMETERS } },
    );
  }
}

/** The key holder returns the decrypted sums as one Float32 message: at most PAILLIER_MAX_PARAMETERS parameters. */
function assertPaillierFits(weights: readonly NamedTensor[]): void {
  const parameters = weights.reduce((n, t) => n + t.data.length, 0);
  if (parameters > PAILLIER_MAX_PARAMETERS) {
    throw new TributaryError(
      'JOB_SPEC_INVALID',
      `secureAggregation "paillier" supports models of at most ${PAILLIER_MAX_PARAMETERS} parameters (the decrypted sums travel as one ${MAX_CHUNK_BYTES}-byte message); this model has ${parameters}.`,
      { details: { parameters, maxParameters: PAILLIER_MAX_PARAMETERS } },
    );
  }
}

/** Creates jobs, owns their round runners, and resumes running jobs after a restart. */
export class JobManager {
  private readonly runners = new Map<string, { runner: JobRunner; done: Promise<JobRecord> }>();
  /** Key holders of `paillier` jobs and their outstanding decryptions. */
  readonly keyHolders = new KeyHolderRegistry();

  constructor(private readonly deps: JobManagerDeps) {}

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
    if (spec.chain) {
      if (!this.deps.chain)
        throw new TributaryError('JOB_SPEC_INVALID', 'chain: this coordinator runs no chain integration.');
      await this.deps.chain.assertUsable(spec);
    }
    // Size and scoring cost from the spec alone: refused before any weight exists.
    assertJobWithinLimits(spec, this.deps.limits);
    await assertInvitedListingsFit(spec, this.deps.store);
    const weights = await this.deps.models.initialWeights(spec);
    if (spec.secureAggregation === 'secagg') assertSecAggFits(weights);
    if (spec.secureAggregation === 'paillier') assertPaillierFits(weights);
    const bytes = encodeTensors(weights);
    const now = new Date();
    const job: JobRecord = {
      id: `job_${randomBytes(9).toString('base64url')}`,
      spec,
      // A paid job recruits only once its escrow holds the budget (the chain service activates it).
      status: spec.chain ? 'pending' : 'running',
      currentRound: 0,
      modelHash: contentHash(bytes),
      weightManifest: manifestOf(weights),
      ...(options.owner !== undefined ? { owner: options.owner } : {}),
      visibility: spec.visibility ?? (spec.chain ? 'private' : 'public'),
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
    if (job.status === 'pending') this.deps.chain?.track(job);
    else this.start(job);
    this.deps.logger.info('job created', { jobId: job.id, name: spec.name, rounds: spec.rounds });
    return job;
  }

  /**
   * Stops a pending or running job for good: its runner stops, it is marked failed with `reason`, and
   * its members are told (job:finished). JOB_NOT_RUNNING if it already ended.
   */
  async cancelJob(jobId: string, reason: string): Promise<JobRecord> {
    const job = await this.getJob(jobId);
    if (job.status !== 'pending' && job.status !== 'running') {
      throw new TributaryError(
        'JOB_NOT_RUNNING',
        `Job ${jobId} is ${job.status}; only pending or running jobs can be cancelled.`,
      );
    }
    const entry = this.runners.get(jobId);
    entry?.runner.stop();
    await entry?.done;
    const cancelled = await this.deps.store.updateJob(jobId, { status: 'failed', failureReason: reason });
    for (const clientId of this.deps.directory.members(jobId)) {
      this.deps.directory.link(clientId)?.send(EVENTS.jobFinished, { jobId, status: 'failed', reason });
    }
    this.deps.chain?.onJobFinished(jobId);
    this.deps.logger.info('job cancelled', { jobId });
    return cancelled;
  }

  /** Starts a runner for every job the store says is running (after a crash or restart). */
  async resumeRunningJobs(): Promise<string[]> {
    const running = await this.deps.store.listJobs({ status: 'running' });
    for (const job of running) {
      if (!this.runners.has(job.id)) {
        this.deps.logger.info('resuming job', { jobId: job.id, fromRound: job.currentRound + 1 });
        this.start(job);
      }
    }
    return running.map((j) => j.id);
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
      this.start(job);
    }
  }

  async requireJoinable(jobId: string): Promise<JobRecord> {
    const job = await this.getJob(jobId);
    if (job.status === 'pending' && job.spec.chain) {
      throw new TributaryError(
        'JOB_NOT_FUNDED',
        `Job ${jobId} is waiting for its escrow (${job.spec.chain.escrow}, job ${job.spec.chain.jobId}) to hold the budget; joins open once it does.`,
      );
    }
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

  /** JOB_ACCESS_DENIED unless the job's access policy (spec.access) admits this client as a provider. */
  async assertMayJoin(job: JobRecord, clientId: string): Promise<void> {
    await assertMayJoin(job.id, job.spec, clientId, this.deps.store);
  }

  async recordJoin(jobId: string, clientId: string, payoutAddress?: string): Promise<void> {
    const existing = (await this.deps.store.listParticipants(jobId)).find((p) => p.clientId === clientId);
    const now = new Date();
    const address = payoutAddress ?? existing?.payoutAddress;
    await this.deps.store.saveParticipant({
      jobId,
      clientId,
      joinedAt: existing?.joinedAt ?? now,
      lastSeenAt: now,
      roundsCompleted: existing?.roundsCompleted ?? 0,
      ...(address ? { payoutAddress: address } : {}),
    });
  }

  /** The runner of a job this client has joined. */
  requireRunner(jobId: string, clientId: string): JobRunner {
    const entry = this.runners.get(jobId);
    if (!entry) throw new TributaryError('JOB_NOT_FOUND', `No running job with id "${jobId}".`);
    if (!this.deps.directory.hasJoined(clientId, jobId)) {
      throw new TributaryError('JOB_NOT_JOINED', `Join job ${jobId} before sending updates.`);
    }
    return entry.runner;
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

  /** Stops every runner; running jobs stay `running` in the store so a restart resumes them. */
  async stop(): Promise<void> {
    const entries = [...this.runners.values()];
    for (const e of entries) e.runner.stop();
    this.keyHolders.cancelAll('The coordinator is shutting down.');
    await Promise.all(entries.map((e) => e.done));
  }

  private start(job: JobRecord): void {
    const runner = new JobRunner(job, {
      store: this.deps.store,
      directory: this.deps.directory,
      strategy: createStrategy(job.spec),
      createAggregator: aggregatorFactory(job.id, job.spec, this.keyHolders, this.deps.keepClientUpdates),
      evaluator: this.deps.evaluator,
      logger: this.deps.logger,
      chunkBytes: this.deps.chunkBytes,
      onRoundCompleted: this.deps.onRoundCompleted,
    });
    const done = runner
      .run()
      .finally(() => {
        this.runners.delete(job.id);
        this.deps.onJobEnded?.(job.id);
      })
      .then((finished) => {
        if (finished.status !== 'running') this.deps.chain?.onJobFinished(finished.id);
        return finished;
      });
    this.runners.set(job.id, { runner, done });
  }
}
