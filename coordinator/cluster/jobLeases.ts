import { randomBytes } from 'node:crypto';
import type { Logger } from '../logger';
import { chainLeaseLog, type JobLease, type LeaseClaim, type Store } from '../store/store';

/** How a node takes part in a cluster. */
export interface ClusterOptions {
  /** This node's id in leases. @default random per process (a restarted node is a new node) */
  nodeId?: string;
  /** How long a lease lasts without a heartbeat: the bound on how long a dead owner's jobs wait. @default 10000 */
  leaseTtlMs?: number;
  /** How often the owner renews its leases. @default leaseTtlMs / 3 */
  heartbeatMs?: number;
  /** How often a node looks for running jobs whose lease expired, to take them over. @default leaseTtlMs / 2 */
  scanMs?: number;
}

/**
 * Which lease a JobLeases instance keeps: `job`, the runner's (the job's own log, only while the job
 * runs), or `chain`, the chain worker's (log `chain:<jobId>`, while the job's chain work is not done).
 */
export type LeaseKind = 'job' | 'chain';

/** A lease kind's four store calls, by job id. */
interface LeaseLog {
  acquire(jobId: string, claim: LeaseClaim): Promise<JobLease | null>;
  renew(
    jobId: string,
    owner: string,
    token: number,
    claim: Pick<LeaseClaim, 'ttlMs' | 'now'>,
  ): Promise<JobLease | null>;
  release(jobId: string, owner: string, token: number): Promise<void>;
  get(jobId: string): Promise<JobLease | null>;
}

function leaseLog(store: Store, kind: LeaseKind): LeaseLog {
  if (kind === 'job') {
    return {
      acquire: (jobId, claim) => store.acquireJobLease(jobId, claim),
      renew: (jobId, owner, token, claim) => store.renewJobLease(jobId, owner, token, claim),
      release: (jobId, owner, token) => store.releaseJobLease(jobId, owner, token),
      get: (jobId) => store.getJobLease(jobId),
    };
  }
  return {
    acquire: (jobId, claim) => store.acquireChainLease(jobId, claim),
    renew: (jobId, owner, token, claim) => store.renewJobLease(chainLeaseLog(jobId), owner, token, claim),
    release: (jobId, owner, token) => store.releaseJobLease(chainLeaseLog(jobId), owner, token),
    get: (jobId) => store.getJobLease(chainLeaseLog(jobId)),
  };
}

/** What a node holds: the lease and when it was last confirmed by the store (by this node's clock). */
interface Held {
  lease: JobLease;
  timer: NodeJS.Timeout;
  onLost: () => void;
}

/**
 * This node's side of the job leases (coordinator/cluster): takes a running job's lease (Store
 * acquireJobLease: an append to the job's log that only one claimant wins), renews every lease it
 * holds on a heartbeat, and tells the job's runner to stop when a renewal fails or the lease runs out
 * without one (a node cut off from the store, or paused, must assume another node took over). The
 * lease bounds liveness only; safety comes from the fencing token every commit carries, so a node
 * that wrongly believes it still holds a lease (a paused process, a skewed clock) can never commit.
 *
 * One instance per lease kind: `job` (the runner's lease, held by JobManager) and `chain` (a paid
 * job's chain worker, held by ChainService); both follow these rules on logs of their own.
 *
 * Clocks: expiry is written and judged with each node's own clock; skew between nodes shortens or
 * lengthens a takeover by the skew, and never lets two tenures commit.
 */
export class JobLeases {
  readonly nodeId: string;
  readonly ttlMs: number;
  readonly heartbeatMs: number;
  readonly scanMs: number;
  private readonly held = new Map<string, Held>();
  private stopped = false;
  private readonly log: LeaseLog;

  constructor(
    private readonly store: Store,
    private readonly logger: Logger,
    /** This node's public URL (known once listening): where JOB_ELSEWHERE sends clients. */
    private readonly url: () => string,
    options: ClusterOptions = {},
    private readonly now: () => number = Date.now,
    /** Which lease this instance keeps (a node has one of each kind). */
    readonly kind: LeaseKind = 'job',
  ) {
    this.log = leaseLog(store, kind);
    this.nodeId = options.nodeId ?? `node_${randomBytes(6).toString('hex')}`;
    this.ttlMs = options.leaseTtlMs ?? 10_000;
    this.heartbeatMs = options.heartbeatMs ?? Math.max(50, Math.floor(this.ttlMs / 3));
    this.scanMs = options.scanMs ?? Math.max(50, Math.floor(this.ttlMs / 2));
  }

  /** Takes the job's lease if it is free or expired; null if another node holds it. */
  async acquire(jobId: string): Promise<JobLease | null> {
    if (this.stopped) return null;
    const lease = await this.log.acquire(jobId, {
      owner: this.nodeId,
      url: this.url(),
      ttlMs: this.ttlMs,
      now: new Date(this.now()),
    });
    if (lease) this.logger.info(`${this.kind} lease taken`, { jobId, node: this.nodeId, token: lease.token });
    return lease;
  }

  /**
   * Takes the job's lease even from a live holder (cancelling a job another node runs): the new token
   * fences the holder out at once, and its next heartbeat tells it to stop. Not kept on a heartbeat:
   * the caller finishes the job and releases it. Null if the job is not running any more.
   */
  async preempt(jobId: string): Promise<JobLease | null> {
    // A racing takeover or commit may win the append: try again, a few times, against the new tail.
    for (let tries = 0; tries < 5; tries++) {
      const lease = await this.log.acquire(jobId, {
        owner: this.nodeId,
        url: this.url(),
        ttlMs: this.ttlMs,
        now: new Date(this.now()),
        preempt: true,
      });
      if (lease) {
        this.logger.info(`${this.kind} lease preempted`, { jobId, node: this.nodeId, token: lease.token });
        return lease;
      }
      if ((await this.store.getJob(jobId))?.status !== 'running') return null;
    }
    return null;
  }

  /** Renews `lease` on the heartbeat until release(); `onLost` once a renewal fails or the lease runs out unrenewed. */
  keep(jobId: string, lease: JobLease, onLost: () => void): void {
    this.drop(jobId);
    const held: Held = { lease, onLost, timer: setInterval(() => void this.renew(jobId), this.heartbeatMs) };
    held.timer.unref();
    this.held.set(jobId, held);
  }

  /** Whether this node still holds the job's lease with `token`, as the store says now. */
  async holds(jobId: string, token: number): Promise<boolean> {
    const lease = await this.log.get(jobId);
    return lease !== null && lease.owner === this.nodeId && lease.token === token;
  }

  /** Stops renewing and expires the lease at once (clean stop or job end: another node need not wait). */
  async release(jobId: string): Promise<void> {
    const held = this.drop(jobId);
    if (held) await this.log.release(jobId, this.nodeId, held.lease.token).catch(() => undefined);
  }

  /** Expires a lease this node took with `token` and does not keep (a preempted one, once used). */
  async releaseToken(jobId: string, token: number): Promise<void> {
    await this.log.release(jobId, this.nodeId, token).catch(() => undefined);
  }

  /** Jobs this node holds a lease on. */
  get jobIds(): string[] {
    return [...this.held.keys()];
  }

  /** The URL of the node that holds the job's lease, or null if nobody does (or it expired). */
  async ownerUrl(jobId: string): Promise<string | null> {
    const lease = await this.log.get(jobId);
    return lease && lease.expiresAt.getTime() > this.now() ? lease.url : null;
  }

  /** Releases every lease (clean shutdown). */
  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.jobIds.map((jobId) => this.release(jobId)));
  }

  private async renew(jobId: string): Promise<void> {
    const held = this.held.get(jobId);
    if (!held) return;
    const { lease } = held;
    // Past expiry without a renewal (a pause, a slow or unreachable store): another node may have
    // taken over. The store says whether one did: a renewal succeeds only if no takeover was appended,
    // so a slow store does not cost the lease (commits are fenced either way).
    const overdue = this.now() >= lease.expiresAt.getTime();
    let renewed: JobLease | null = null;
    try {
      renewed = await this.log.renew(jobId, this.nodeId, lease.token, {
        ttlMs: this.ttlMs,
        now: new Date(this.now()),
      });
    } catch (err) {
      this.logger.error(`${this.kind} lease renewal failed`, { jobId, message: String(err) });
      // Cut off from the store past expiry: assume another node runs the job, and let its providers go.
      if (!overdue) return;
    }
    if (this.held.get(jobId) !== held) return;
    if (renewed) {
      held.lease = renewed;
      return;
    }
    this.logger.info(`${this.kind} lease lost`, { jobId, node: this.nodeId, token: lease.token, overdue });
    this.drop(jobId);
    held.onLost();
  }

  private drop(jobId: string): Held | undefined {
    const held = this.held.get(jobId);
    if (held) clearInterval(held.timer);
    this.held.delete(jobId);
    return held;
  }
}
