import { TributaryError } from '../../shared/errors';
import { DEFAULT_LISTING_RESULTS, listingMatches, type ListingQuery } from '../../shared/schemas/listing';
import {
  afterAuditCursor,
  afterJobCursor,
  afterListingCursor,
  applyJobPatch,
  compareAuditOldestFirst,
  compareJobsNewestFirst,
  copyBytes,
  deepCopy,
  isVisibleTo,
  isManagedBy,
  compareTranscripts,
  fenceAllows,
  leaseLost,
} from './records';
import { chainLeaseLog } from './store';
import type {
  ApiKeyRecord,
  ChainStateRecord,
  AuditCursor,
  AuditRecord,
  CheckpointRecord,
  JobLease,
  JobPageQuery,
  JobPatch,
  LeaseClaim,
  JobRecord,
  JobStatus,
  ListingRecord,
  ParticipantJoin,
  ParticipantRecord,
  PayoutPlanRecord,
  RoundRecord,
  SlotClaim,
  SlotClaimResult,
  SlotKind,
  Store,
  TranscriptRecord,
} from './store';
import { claimSlot, releaseSlot, type SlotBackend, type SlotEntry } from './slotClaims';

/** An entry of a job's cluster log (Store.acquireJobLease, Store.appendRoundCommit). */
type JobEvent = { kind: 'lease'; lease: JobLease } | { kind: 'commit'; token: number; record: RoundRecord };

/** The latest entry of `kind` in a job's log. */
function lastOf<K extends JobEvent['kind']>(
  events: readonly JobEvent[] | undefined,
  kind: K,
): Extract<JobEvent, { kind: K }> | undefined {
  for (let i = (events?.length ?? 0) - 1; i >= 0; i--) {
    const e = events![i];
    if (e.kind === kind) return e as Extract<JobEvent, { kind: K }>;
  }
  return undefined;
}

/**
 * The embedded default store: everything in process memory, gone on exit.
 *
 * Every record is copied on the way in and on the way out, so a caller that mutates what it passed or
 * got back cannot change stored state (the same guarantee a database gives).
 */
export class MemoryStore implements Store {
  readonly kind = 'memory' as const;

  private readonly jobs = new Map<string, JobRecord>();
  /** "jobId:round:attempt" -> the fencing token the round record was last written with. */
  private readonly roundFences = new Map<string, number>();
  /** jobId -> the job's log of lease takeovers and round commits, in sequence order. */
  private readonly events = new Map<string, JobEvent[]>();
  /** jobId -> "round:attempt" -> record */
  private readonly rounds = new Map<string, Map<string, RoundRecord>>();
  /** jobId -> clientId -> record */
  private readonly participants = new Map<string, Map<string, ParticipantRecord>>();
  /** The last round counted into each participant's roundsCompleted (`jobId\0clientId`); never returned. */
  private readonly countedRounds = new Map<string, number>();
  /** jobId -> round -> checkpoint */
  private readonly checkpoints = new Map<string, Map<number, CheckpointRecord>>();
  private readonly validationSets = new Map<string, Uint8Array>();
  private readonly listings = new Map<string, ListingRecord>();
  private readonly payoutPlans = new Map<string, PayoutPlanRecord>();
  private readonly chainStates = new Map<string, ChainStateRecord>();
  private readonly apiKeys = new Map<string, ApiKeyRecord>();
  private readonly audit = new Map<string, AuditRecord>();
  /** jobId -> "round:kind" -> transcript */
  private readonly transcripts = new Map<string, Map<string, TranscriptRecord>>();
  /** "kind\0scope" -> "slot:generation" -> entry (claim slots, slotClaims.ts). */
  private readonly slots = new Map<string, Map<string, SlotEntry>>();
  private closed = false;

  async createJob(job: JobRecord): Promise<void> {
    this.assertOpen();
    if (this.jobs.has(job.id)) {
      throw new TributaryError('INTERNAL', `A job with id "${job.id}" already exists.`);
    }
    this.jobs.set(job.id, deepCopy(job));
  }

  async getJob(id: string): Promise<JobRecord | null> {
    this.assertOpen();
    const job = this.jobs.get(id);
    return job ? deepCopy(job) : null;
  }

  async listJobs(filter: { status?: JobStatus } = {}): Promise<JobRecord[]> {
    this.assertOpen();
    return [...this.jobs.values()]
      .filter((job) => filter.status === undefined || job.status === filter.status)
      .sort(compareJobsNewestFirst)
      .map((job) => deepCopy(job));
  }

  async updateJob(id: string, patch: JobPatch): Promise<JobRecord> {
    this.assertOpen();
    const job = this.jobs.get(id);
    if (!job) throw new TributaryError('JOB_NOT_FOUND', `No job with id "${id}".`);
    const updated = applyJobPatch(job, deepCopy(patch));
    this.jobs.set(id, updated);
    return deepCopy(updated);
  }

  async listJobsPage(query: JobPageQuery): Promise<JobRecord[]> {
    this.assertOpen();
    return [...this.jobs.values()]
      .filter(
        (job) =>
          (query.status === undefined || job.status === query.status) &&
          isVisibleTo(job, query.visibleTo) &&
          (query.managedBy === undefined || isManagedBy(job, query.managedBy)) &&
          (query.after === undefined || afterJobCursor(job, query.after)),
      )
      .sort(compareJobsNewestFirst)
      .slice(0, query.limit)
      .map((job) => deepCopy(job));
  }

  async countJobs(filter: { owner: string; statuses: readonly JobStatus[] }): Promise<number> {
    this.assertOpen();
    let n = 0;
    for (const job of this.jobs.values()) if (job.owner === filter.owner && filter.statuses.includes(job.status)) n++;
    return n;
  }

  async acquireJobLease(jobId: string, claim: LeaseClaim): Promise<JobLease | null> {
    this.assertOpen();
    if (this.jobs.get(jobId)?.status !== 'running') return null;
    return this.takeLease(jobId, claim);
  }

  async acquireChainLease(jobId: string, claim: LeaseClaim): Promise<JobLease | null> {
    this.assertOpen();
    if (!this.jobs.get(jobId)?.spec.chain || this.chainStates.get(jobId)?.done) return null;
    return this.takeLease(chainLeaseLog(jobId), claim);
  }

  private takeLease(jobId: string, claim: LeaseClaim): JobLease | null {
    const lease = this.currentLease(jobId);
    if (lease && !claim.preempt && lease.expiresAt.getTime() > claim.now.getTime()) return null;
    const taken: JobLease = {
      owner: claim.owner,
      url: claim.url,
      token: (lease?.token ?? 0) + 1,
      expiresAt: new Date(claim.now.getTime() + claim.ttlMs),
    };
    this.log(jobId).push({ kind: 'lease', lease: taken });
    return deepCopy(taken);
  }

  async renewJobLease(
    jobId: string,
    owner: string,
    token: number,
    claim: Pick<LeaseClaim, 'ttlMs' | 'now'>,
  ): Promise<JobLease | null> {
    this.assertOpen();
    const lease = this.currentLease(jobId);
    if (!lease || lease.owner !== owner || lease.token !== token) return null;
    lease.expiresAt = new Date(claim.now.getTime() + claim.ttlMs);
    return deepCopy(lease);
  }

  async releaseJobLease(jobId: string, owner: string, token: number): Promise<void> {
    this.assertOpen();
    const lease = this.currentLease(jobId);
    if (lease && lease.owner === owner && lease.token === token) lease.expiresAt = new Date(0);
  }

  async getJobLease(jobId: string): Promise<JobLease | null> {
    this.assertOpen();
    const lease = this.currentLease(jobId);
    return lease ? deepCopy(lease) : null;
  }

  async appendRoundCommit(jobId: string, token: number, record: RoundRecord): Promise<void> {
    this.assertOpen();
    if (this.currentLease(jobId)?.token !== token) throw leaseLost(jobId, token);
    this.log(jobId).push({ kind: 'commit', token, record: deepCopy(record) });
  }

  async lastRoundCommit(jobId: string): Promise<{ token: number; record: RoundRecord } | null> {
    this.assertOpen();
    const last = lastOf(this.events.get(jobId), 'commit');
    return last ? { token: last.token, record: deepCopy(last.record) } : null;
  }

  private currentLease(jobId: string): JobLease | undefined {
    return lastOf(this.events.get(jobId), 'lease')?.lease;
  }

  private log(jobId: string): JobEvent[] {
    let events = this.events.get(jobId);
    if (!events) this.events.set(jobId, (events = []));
    return events;
  }

  async saveRound(record: RoundRecord, guard?: { fence: number }): Promise<void> {
    this.assertOpen();
    const key = `${record.jobId}:${record.round}:${record.attempt}`;
    if (!fenceAllows(this.roundFences.get(key), guard?.fence)) throw leaseLost(record.jobId, guard?.fence);
    if (guard) this.roundFences.set(key, guard.fence);
    this.childMap(this.rounds, record.jobId).set(`${record.round}:${record.attempt}`, deepCopy(record));
  }

  async listRounds(jobId: string): Promise<RoundRecord[]> {
    this.assertOpen();
    return [...(this.rounds.get(jobId)?.values() ?? [])]
      .sort((a, b) => a.round - b.round || a.attempt - b.attempt)
      .map((r) => deepCopy(r));
  }

  async saveParticipant(record: ParticipantRecord): Promise<void> {
    this.assertOpen();
    this.childMap(this.participants, record.jobId).set(record.clientId, deepCopy(record));
    this.countedRounds.delete(`${record.jobId}\0${record.clientId}`);
  }

  async getParticipant(jobId: string, clientId: string): Promise<ParticipantRecord | null> {
    this.assertOpen();
    const p = this.participants.get(jobId)?.get(clientId);
    return p ? deepCopy(p) : null;
  }

  async recordJoin(join: ParticipantJoin): Promise<void> {
    this.assertOpen();
    const participants = this.childMap(this.participants, join.jobId);
    const p = participants.get(join.clientId);
    const address = join.payoutAddress ?? p?.payoutAddress;
    participants.set(join.clientId, {
      jobId: join.jobId,
      clientId: join.clientId,
      joinedAt: new Date(p?.joinedAt ?? join.at),
      lastSeenAt: new Date(join.at),
      roundsCompleted: p?.roundsCompleted ?? 0,
      ...(address !== undefined ? { payoutAddress: address } : {}),
    });
  }

  async countRoundCompleted(jobId: string, round: number, clientIds: readonly string[], at: Date): Promise<void> {
    this.assertOpen();
    const participants = this.childMap(this.participants, jobId);
    for (const clientId of clientIds) {
      const key = `${jobId}\0${clientId}`;
      const p = participants.get(clientId) ?? {
        jobId,
        clientId,
        joinedAt: new Date(at),
        lastSeenAt: new Date(at),
        roundsCompleted: 0,
      };
      participants.set(clientId, p);
      if ((this.countedRounds.get(key) ?? Number.NEGATIVE_INFINITY) >= round) continue;
      this.countedRounds.set(key, round);
      p.roundsCompleted += 1;
      p.lastSeenAt = new Date(at);
    }
  }

  async listParticipants(jobId: string): Promise<ParticipantRecord[]> {
    this.assertOpen();
    return [...(this.participants.get(jobId)?.values() ?? [])]
      .sort((a, b) => (a.clientId < b.clientId ? -1 : a.clientId > b.clientId ? 1 : 0))
      .map((p) => deepCopy(p));
  }

  async savePayoutPlan(plan: PayoutPlanRecord): Promise<void> {
    this.assertOpen();
    if (!this.payoutPlans.has(plan.jobId)) this.payoutPlans.set(plan.jobId, deepCopy(plan));
  }

  async saveChainState(record: ChainStateRecord): Promise<void> {
    this.assertOpen();
    if (!fenceAllows(this.chainStates.get(record.jobId)?.fence, record.fence))
      throw leaseLost(record.jobId, record.fence);
    this.chainStates.set(record.jobId, deepCopy(record));
  }

  async loadChainState(jobId: string): Promise<ChainStateRecord | null> {
    this.assertOpen();
    const record = this.chainStates.get(jobId);
    return record ? deepCopy(record) : null;
  }

  async loadPayoutPlan(jobId: string): Promise<PayoutPlanRecord | null> {
    this.assertOpen();
    const plan = this.payoutPlans.get(jobId);
    return plan ? deepCopy(plan) : null;
  }

  async saveCheckpoint(checkpoint: CheckpointRecord): Promise<void> {
    this.assertOpen();
    const stored = this.checkpoints.get(checkpoint.jobId)?.get(checkpoint.round);
    if (!fenceAllows(stored?.fence, checkpoint.fence)) throw leaseLost(checkpoint.jobId, checkpoint.fence);
    this.childMap(this.checkpoints, checkpoint.jobId).set(checkpoint.round, deepCopy(checkpoint));
  }

  async loadCheckpoint(jobId: string, round?: number): Promise<CheckpointRecord | null> {
    this.assertOpen();
    const byRound = this.checkpoints.get(jobId);
    if (!byRound || byRound.size === 0) return null;
    const key = round ?? Math.max(...byRound.keys());
    const checkpoint = byRound.get(key);
    return checkpoint ? deepCopy(checkpoint) : null;
  }

  async saveTranscript(record: TranscriptRecord): Promise<void> {
    this.assertOpen();
    const stored = this.transcripts.get(record.jobId)?.get(`${record.round}:${record.kind}`);
    if (!fenceAllows(stored?.fence, record.fence)) throw leaseLost(record.jobId, record.fence);
    this.childMap(this.transcripts, record.jobId).set(`${record.round}:${record.kind}`, deepCopy(record));
  }

  async listTranscripts(jobId: string): Promise<TranscriptRecord[]> {
    this.assertOpen();
    return [...(this.transcripts.get(jobId)?.values() ?? [])].sort(compareTranscripts).map((t) => deepCopy(t));
  }

  async loadTranscript(jobId: string, round: number, kind: TranscriptRecord['kind']): Promise<TranscriptRecord | null> {
    this.assertOpen();
    const record = this.transcripts.get(jobId)?.get(`${round}:${kind}`);
    return record ? deepCopy(record) : null;
  }

  async saveValidationSet(jobId: string, bytes: Uint8Array): Promise<void> {
    this.assertOpen();
    this.validationSets.set(jobId, copyBytes(bytes));
  }

  async loadValidationSet(jobId: string): Promise<Uint8Array | null> {
    this.assertOpen();
    const bytes = this.validationSets.get(jobId);
    return bytes ? copyBytes(bytes) : null;
  }

  async saveListing(record: ListingRecord): Promise<void> {
    this.assertOpen();
    if (this.listings.has(record.id))
      throw new TributaryError('LISTING_REPLAY', `Listing ${record.id} was already published.`);
    this.listings.set(record.id, deepCopy(record));
  }

  async getListing(id: string): Promise<ListingRecord | null> {
    this.assertOpen();
    const record = this.listings.get(id);
    return record ? deepCopy(record) : null;
  }

  async searchListings(query: ListingQuery): Promise<ListingRecord[]> {
    this.assertOpen();
    const ids = query.ids && new Set(query.ids);
    return [...this.listings.values()]
      .filter(
        (r) =>
          (!ids || ids.has(r.id)) &&
          listingMatches(r.listing, query) &&
          (query.after === undefined || afterListingCursor(r, query.after)),
      )
      .sort((a, b) => b.publishedAt.getTime() - a.publishedAt.getTime() || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
      .slice(0, query.limit ?? DEFAULT_LISTING_RESULTS)
      .map((r) => deepCopy(r));
  }

  async deleteListing(id: string): Promise<boolean> {
    this.assertOpen();
    return this.listings.delete(id);
  }

  async countListings(provider: string): Promise<number> {
    this.assertOpen();
    let n = 0;
    for (const r of this.listings.values()) if (r.listing.provider === provider) n++;
    return n;
  }

  async saveApiKey(record: ApiKeyRecord): Promise<void> {
    this.assertOpen();
    if (this.apiKeys.has(record.id)) throw new TributaryError('INTERNAL', `An API key with id "${record.id}" exists.`);
    this.apiKeys.set(record.id, deepCopy(record));
  }

  async getApiKey(id: string): Promise<ApiKeyRecord | null> {
    this.assertOpen();
    const record = this.apiKeys.get(id);
    return record ? deepCopy(record) : null;
  }

  async listApiKeys(owner: string): Promise<ApiKeyRecord[]> {
    this.assertOpen();
    return [...this.apiKeys.values()]
      .filter((k) => k.owner === owner)
      .sort((a, b) => b.createdAt.getTime() - a.createdAt.getTime() || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
      .map((k) => deepCopy(k));
  }

  async revokeApiKey(id: string, at: Date): Promise<boolean> {
    this.assertOpen();
    const record = this.apiKeys.get(id);
    if (!record || record.revokedAt) return false;
    record.revokedAt = new Date(at.getTime());
    return true;
  }

  async appendAudit(record: AuditRecord): Promise<void> {
    this.assertOpen();
    if (!this.audit.has(record.id)) this.audit.set(record.id, deepCopy(record));
  }

  async listAudit(query: {
    jobId?: string;
    actor?: string;
    after?: AuditCursor;
    limit: number;
  }): Promise<AuditRecord[]> {
    this.assertOpen();
    return [...this.audit.values()]
      .filter(
        (r) =>
          (query.jobId === undefined || r.jobId === query.jobId) &&
          (query.actor === undefined || r.actor === query.actor) &&
          (query.after === undefined || afterAuditCursor(r, query.after)),
      )
      .sort(compareAuditOldestFirst)
      .slice(0, query.limit)
      .map((r) => deepCopy(r));
  }

  async claimSlot(claim: SlotClaim): Promise<SlotClaimResult> {
    this.assertOpen();
    return claimSlot(this.slotBackend, claim);
  }

  async releaseSlot(kind: SlotKind, scope: string, holder: string): Promise<void> {
    this.assertOpen();
    await releaseSlot(this.slotBackend, kind, scope, holder);
  }

  private readonly slotBackend: SlotBackend = {
    slotEntries: async (kind, scope) =>
      [...(this.slots.get(`${kind}\0${scope}`)?.values() ?? [])].map((e) => ({ ...e })),
    insertSlot: async (entry) => {
      const key = `${entry.kind}\0${entry.scope}`;
      const entries = this.slots.get(key) ?? new Map<string, SlotEntry>();
      this.slots.set(key, entries);
      const id = `${entry.slot}:${entry.generation}`;
      if (entries.has(id)) return false;
      entries.set(id, { ...entry });
      return true;
    },
    holderStates: async (kind, holders, now) => {
      const states = new Map<string, boolean>();
      for (const id of holders) {
        if (kind === 'escrow' || kind === 'jobs') {
          const job = this.jobs.get(id);
          if (job) states.set(id, kind === 'escrow' || job.status === 'pending' || job.status === 'running');
        } else if (kind === 'api-keys') {
          const key = this.apiKeys.get(id);
          if (key) states.set(id, !key.revokedAt && key.expiresAt.getTime() > now.getTime());
        } else if (this.listings.has(id)) states.set(id, true);
      }
      return states;
    },
  };

  async close(): Promise<void> {
    this.closed = true;
  }

  // Same behaviour as MongoStore after close, so code that outlives its store fails the same way on both.
  private assertOpen(): void {
    if (this.closed) throw new TributaryError('STORE_UNAVAILABLE', 'The memory store is closed.');
  }

  private childMap<K, V>(parent: Map<string, Map<K, V>>, jobId: string): Map<K, V> {
    let child = parent.get(jobId);
    if (!child) {
      child = new Map();
      parent.set(jobId, child);
    }
    return child;
  }
}
