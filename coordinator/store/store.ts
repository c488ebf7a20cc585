import type { ApiKeyScope } from '../../shared/schemas/restApi';
import type { JobAccess } from '../../shared/schemas/jobAccess';
import type { RdpAccountantState } from '../../shared/privacy/rdpAccountant';
import type { PrivacyNoise } from '../../shared/schemas/privacySpec';
import type { JobSpec } from '../../shared/schemas/jobSpec';
import type { TensorManifestEntry } from '../../shared/codec/tensors';
import type { Listing, ListingQuery } from '../../shared/schemas/listing';
import type { ChainJobStatus } from '../chain/chainJobStatus';

export type JobStatus = 'pending' | 'running' | 'completed' | 'failed';

/** Who may read a job's model, checkpoints, rounds and participants: anyone, or its owner and members. */
export type JobVisibility = 'public' | 'private';

/** A training job as the coordinator keeps it. */
export interface JobRecord {
  id: string;
  spec: JobSpec;
  status: JobStatus;
  /** The last round whose result was committed (0 = none yet, the initial model). */
  currentRound: number;
  /** SHA-256 (hex) of the current global model's codec bytes. */
  modelHash: string;
  /** Names and shapes of the model's weights, in order. */
  weightManifest: TensorManifestEntry[];
  failureReason?: string;
  /**
   * The identity that created the job over REST (coordinator/auth principal id, e.g. `ed25519:<hex>` or
   * `eth:0x<address>`); absent for jobs the operator created in process.
   */
  owner?: string;
  /** Absent on records written before visibility existed: then `public`, or `private` for a paid job. */
  visibility?: JobVisibility;
  /** Identities the owner lets manage the job (validation set, cancel, invitations, private reads). */
  delegates?: string[];
  /** Jobs with a `privacy` block: the accountant and the next round's clipping norm (coordinator/privacy). */
  privacy?: JobPrivacyState;
  createdAt: Date;
  updatedAt: Date;
}

/**
 * What a DP job carries from round to round, so that a resumed job continues from the budget it spent:
 * the RDP accountant's state and the clipping norm C of the next round (it moves under adaptive
 * clipping). The plan itself is derived again from the spec (assertPrivacyUsable is deterministic).
 */
export interface JobPrivacyState {
  accountant: RdpAccountantState;
  clippingNorm: number;
}

/**
 * Which coordinator node runs a job (coordinator/cluster). `token` is the fencing token: it grows by
 * one each time the lease changes hands and never otherwise; every clustered commit carries it.
 */
export interface JobLease {
  /** The node id (random per process). */
  owner: string;
  /** Where clients reach the owner (its public URL). */
  url: string;
  token: number;
  expiresAt: Date;
}

/** What a node asks for when it takes or renews a lease. */
export interface LeaseClaim {
  owner: string;
  url: string;
  ttlMs: number;
  /** The claiming node's clock (expiry is judged by it; fencing keeps a skewed clock safe, see cluster docs). */
  now: Date;
  /**
   * Take the lease even if it has not expired (a node cancelling a job another node runs: the new
   * token fences the owner out at once, docs/cluster.md). @default false
   */
  preempt?: boolean;
}

/**
 * What a claim slot guards. `escrow`: one job per escrow job (scope: escrowScopeOf, limit 1; held by
 * the job forever). `jobs`: pending or running jobs per owner. `api-keys`: live API keys per owner.
 * `listings`: published listings per provider.
 */
export type SlotKind = 'escrow' | 'jobs' | 'api-keys' | 'listings';

/** A request for one of `limit` slots of (kind, scope), for the record `holder` (created after the claim). */
export interface SlotClaim {
  kind: SlotKind;
  /** Whose slots: an identity id (quotas) or an escrow job's scope. */
  scope: string;
  /** The id of the record the slot is for (job id, API key id, listing id). */
  holder: string;
  limit: number;
  /** The claimant's clock: API key expiry and pending claims are judged by it. */
  now: Date;
  /**
   * How long a slot whose record does not exist yet stays held (the creation is in progress); after
   * that it is free again (the creating node died before writing the record).
   */
  pendingMs: number;
}

/**
 * The answer to a SlotClaim: `claimed` (a free slot is now held for the holder), `held` (the holder
 * already held one: a retry), or `refused` with the holders of the `limit` slots in force.
 */
export type SlotClaimResult = { outcome: 'claimed' | 'held' } | { outcome: 'refused'; holders: string[] };

export type JobPatch = Partial<
  Pick<JobRecord, 'status' | 'currentRound' | 'modelHash' | 'failureReason' | 'delegates' | 'privacy'> & {
    /** Replaces `spec.access` (the owner changed the invitations). */
    access: JobAccess;
  }
>;

/** Where a page of a newest-first list starts: after this (createdAt, id). */
export interface JobCursor {
  createdAt: Date;
  id: string;
}

/** One page of jobs (listJobsPage), newest first (ties by id), like listJobs. */
export interface JobPageQuery {
  status?: JobStatus;
  /** Only jobs this identity may list: `public` ones and those it owns or is a delegate of; null = public only. */
  visibleTo: string | null;
  /** Only jobs this identity owns or is a delegate of. */
  managedBy?: string;
  after?: JobCursor;
  limit: number;
}

/** What an API key may do on behalf of its owner (shared/schemas/restApi.ts). */
export type { ApiKeyScope };

/** A machine credential. Only a hash of the token is stored; the token itself is shown once, at creation. */
export interface ApiKeyRecord {
  /** Public id, also the token's second part (`trk_<id>_<secret>`). */
  id: string;
  /** The principal the key acts for. */
  owner: string;
  name: string;
  scopes: ApiKeyScope[];
  /** SHA-256 (hex) of the whole token. */
  tokenHash: string;
  createdAt: Date;
  expiresAt: Date;
  revokedAt?: Date;
}

/**
 * One state-changing action, kept for the owner's audit trail (GET /v1/jobs/:id/audit): who did what,
 * when, with digests of what changed (never the data itself).
 */
export interface AuditRecord {
  id: string;
  /** e.g. `job.created`, `job.cancelled`, `job.validation-set.replaced`, `job.access.changed`, `api-key.created`. */
  action: string;
  /** Principal id of whoever acted (or `operator`). */
  actor: string;
  at: Date;
  /** The job acted on, if any. */
  jobId?: string;
  /** Named SHA-256 digests (hex) of what the action wrote or replaced. */
  digests: Record<string, string>;
  /** Small scalar facts (an API key id, an example count, the previous status). */
  details?: Record<string, string | number | boolean>;
}

/** Where a page of the audit trail starts (oldest first): after this (at, id). */
export interface AuditCursor {
  at: Date;
  id: string;
}

export interface RoundFailure {
  clientId: string;
  /** An error code or a disconnect reason. */
  reason: string;
}

/** One attempt at one round. Failed attempts are kept: dropped clients and retries are data. */
export interface RoundRecord {
  jobId: string;
  round: number;
  attempt: number;
  status: 'completed' | 'failed';
  selected: string[];
  participants: string[];
  failures: RoundFailure[];
  /** Free-form numeric metrics: validationAccuracy, validationLoss, trainLoss, numExamples ... */
  metrics: Record<string, number>;
  modelHash?: string;
  /**
   * SHA-256 (64 lowercase hex digits, like `modelHash`) of the coordinator's signed round transcript,
   * committed on chain with the round (bytes32 0 when absent). Set by the round runner for completed rounds.
   */
  transcriptHash?: string;
  failureReason?: string;
  /**
   * Secure-aggregation cohorts (secagg with `cohortSize`): the members of each cohort whose sum
   * counted in the round, in cohort order. Membership only; the sums are never stored.
   */
  cohorts?: string[][];
  /** Contribution scoring of this round (coordinator/contribution), added after the commit; absent if not scored. */
  contribution?: RoundContribution;
  /** Jobs with a `privacy` block: what the round spent and how it was noised (coordinator/privacy). */
  privacy?: RoundPrivacyRecord;
  startedAt: Date;
  finishedAt: Date;
}

/** A DP round's privacy accounting, as its record reports it (docs/privacy.md). */
export interface RoundPrivacyRecord {
  noise: PrivacyNoise;
  /** The epsilon the job has spent after this round (at `delta`), every revealed attempt counted. */
  epsilon: number;
  delta: number;
  /** The job's budget. */
  epsilonBudget: number;
  /** z, the noise multiplier the accountant was stepped with. */
  noiseMultiplier: number;
  /** q: the round's real sampling rate (selected / eligible connected clients). */
  samplingRate: number;
  /** C, the L2 clipping norm of this round. */
  clippingNorm: number;
  /** The noised fraction of updates that were clipped (never the exact one). */
  clippedFraction: number;
  /** Rounds the accountant has composed, this one included. */
  rounds: number;
}

/**
 * How one round's improvement was shared out. Players are single clients (plaintext mode) or
 * cohorts (secagg / paillier: the coordinator only knows cohort sums); values are Shapley values of
 * U(S) = metric(previous global + FedAvg step of S's summed updates) - metric(previous global).
 */
export interface RoundContribution {
  method: 'exact' | 'gtg';
  metric: 'accuracy' | 'loss';
  /** Metric of the previous global model (loss metric: negative loss). */
  baseline: number;
  /** U(all players): the round's improvement as scored. */
  improvement: number;
  /** Distinct model evaluations used. */
  evaluations: number;
  values: Array<{ members: string[]; value: number }>;
}

export interface ParticipantRecord {
  jobId: string;
  clientId: string;
  joinedAt: Date;
  lastSeenAt: Date;
  roundsCompleted: number;
  /** Payout (Ethereum) address bound to the client's Ed25519 key at join (jobs with a `chain` config). */
  payoutAddress?: string;
}

/** What one join records (`Store.recordJoin`). */
export interface ParticipantJoin {
  jobId: string;
  clientId: string;
  at: Date;
  /** Replaces the stored address when given; absent keeps the one stored. */
  payoutAddress?: string;
}

/**
 * A chain job's payout plan (coordinator/chain/): written once, before the settle transaction is
 * sent, so a restarted coordinator settles the same root and keeps serving the same proofs.
 */
export interface PayoutPlanRecord {
  jobId: string;
  /** Merkle root and total posted with `settle` (0x hex; wei as a decimal string). */
  root: string;
  totalWei: string;
  /** The pool that was split (the escrow budget) and what integer division left for the buyer (wei). */
  poolWei: string;
  dustWei: string;
  /** What the scores measure, e.g. "participation" (rounds completed) or "shapley". */
  scoreLabel: string;
  allocations: Array<{ account: string; amountWei: string; proof: string[]; clientIds: string[]; score: number }>;
  createdAt: Date;
}

/**
 * A chain job's worker state as its last holder saw it (coordinator/chain): what GET /v1/jobs/:id/chain
 * and the payout views answer at any node of a cluster, and whether the chain work is `done` (settled,
 * released or halted: no node takes its chain lease again).
 */
export interface ChainStateRecord {
  jobId: string;
  status: ChainJobStatus;
  done: boolean;
  /** The writer's chain-lease token (clustered): a lower one than the stored record's is refused. */
  fence?: number;
  updatedAt: Date;
}

/** The lease log of a chain job's worker: its own log next to the job's, so the two leases never fence each other. */
export function chainLeaseLog(jobId: string): string {
  return `chain:${jobId}`;
}

/** A global model after a round, plus any strategy state needed to resume exactly (e.g. FedAdam moments). */
export interface CheckpointRecord {
  jobId: string;
  round: number;
  modelHash: string;
  /** Model codec bytes (shared/codec/modelCodec). */
  weights: Uint8Array;
  /**
   * The writer's fencing token (clustered coordinators): a save carrying a lower token than the stored
   * checkpoint's is refused with LEASE_LOST, so a paused former owner cannot replace a newer owner's model.
   */
  fence?: number;
  /** Strategy state as model codec bytes, if the strategy keeps any. */
  strategyState?: Uint8Array;
  createdAt: Date;
}

/**
 * A signed transcript of one round (coordinator/transcript/): `round` for the committed round, written
 * before the round record that carries its hash; `scoring` once contribution scoring has run. Kept as
 * the exact canonical text that was signed, so it comes back byte for byte verifiable.
 */
export interface TranscriptRecord {
  jobId: string;
  round: number;
  kind: 'round' | 'scoring';
  /** SHA-256 (hex) of `text`'s UTF-8 bytes. */
  hash: string;
  /** The RFC 8785 canonical JSON text that was signed. */
  text: string;
  /** Ed25519 signature (hex) over `text`'s UTF-8 bytes. */
  signature: string;
  /** The signing key (hex). */
  signer: string;
  /** The writer's fencing token, as on CheckpointRecord: a lower one than the stored transcript's is refused. */
  fence?: number;
  createdAt: Date;
}

/** A published dataset listing: the provider's signed listing kept verbatim, so anyone can re-verify it. */
export interface ListingRecord {
  /** listingIdOf(listing): a content hash. */
  id: string;
  listing: Listing;
  /** The provider's Ed25519 signature over listingSigningBytes(listing), hex. */
  signature: string;
  publishedAt: Date;
}

/**
 * Everything the coordinator persists. `MemoryStore` is the embedded default; `MongoStore` (mongoose)
 * is selected by MONGODB_URI. One contract suite (store.contract.ts) runs against both.
 *
 * Writes are upserts keyed as documented so a coordinator that crashed mid-commit can redo them.
 */
export interface Store {
  readonly kind: 'memory' | 'mongo';
  /** Throws TributaryError('INTERNAL') if a job with this id exists (ids are generated, so that is a bug). */
  createJob(job: JobRecord): Promise<void>;
  getJob(id: string): Promise<JobRecord | null>;
  /** Newest first (by createdAt; ties by id ascending). */
  listJobs(filter?: { status?: JobStatus }): Promise<JobRecord[]>;
  /**
   * Throws TributaryError('JOB_NOT_FOUND') if absent. Returns the updated record. Patch keys that are
   * undefined are left alone; updatedAt is set to now.
   */
  updateJob(id: string, patch: JobPatch): Promise<JobRecord>;
  /** At most `limit` jobs matching the query, in listJobs order, starting after `after`. */
  listJobsPage(query: JobPageQuery): Promise<JobRecord[]>;
  /** How many jobs `owner` owns with one of these statuses (quotas). */
  countJobs(filter: { owner: string; statuses: readonly JobStatus[] }): Promise<number>;

  /*
   * Clustered coordinators (coordinator/cluster/). Each job has an append-only log of lease takeovers
   * and round commits; an entry is appended only at the next sequence number, and the unique key
   * (jobId, seq) lets exactly one of two racing appends win. That insert is the one atomic step the
   * lease and the fencing rest on: MongoDB and FerretDB both enforce unique indexes atomically,
   * while FerretDB does not make a conditional findOneAndUpdate atomic (leases.contract.ts shows it).
   */
  /**
   * Takes a running job's lease for `claim.owner` if it has none, it expired (by `claim.now`) or
   * `claim.preempt` is set: appends a takeover with the next fencing token. Null if another node holds
   * it (and no preempt), another claimant won the race, or the job is not running.
   */
  acquireJobLease(jobId: string, claim: LeaseClaim): Promise<JobLease | null>;
  /** Extends the lease if `owner` still holds it with `token` (even past expiry, if nobody took it); null if lost. */
  renewJobLease(
    jobId: string,
    owner: string,
    token: number,
    claim: Pick<LeaseClaim, 'ttlMs' | 'now'>,
  ): Promise<JobLease | null>;
  /** Expires the lease at once if `owner` holds it with `token` (clean shutdown: another node takes over without waiting). */
  releaseJobLease(jobId: string, owner: string, token: number): Promise<void>;
  /** The job's current lease (the latest takeover), or null if it never had one. */
  getJobLease(jobId: string): Promise<JobLease | null>;
  /**
   * Takes the lease of a chain job's worker (log `chainLeaseLog(jobId)`, same rules as acquireJobLease)
   * for a job with a chain config, whatever its status, unless its stored chain state is `done`.
   * Renew, release and read it with renewJobLease, releaseJobLease and getJobLease on that log id.
   */
  acquireChainLease(jobId: string, claim: LeaseClaim): Promise<JobLease | null>;
  /**
   * The commit point of a clustered round: appends the committed round record, fenced by `token`.
   * LEASE_LOST (nothing appended) if a later takeover holds the lease, or wins the race to append.
   */
  appendRoundCommit(jobId: string, token: number, record: RoundRecord): Promise<void>;
  /** The last round committed through appendRoundCommit, with the token that committed it; null if none. */
  lastRoundCommit(jobId: string): Promise<{ token: number; record: RoundRecord } | null>;

  /**
   * Upsert keyed by (jobId, round, attempt). With `guard` (clustered nodes), refused with LEASE_LOST if
   * the stored record was written with a higher fencing token (the fence is kept, never returned).
   */
  saveRound(record: RoundRecord, guard?: { fence: number }): Promise<void>;
  /** Ordered by round then attempt. */
  listRounds(jobId: string): Promise<RoundRecord[]>;

  /**
   * Upsert keyed by (jobId, clientId), replacing the whole record (and forgetting which round was last
   * counted into it): for imports and tests. Joins use `recordJoin`, commits `countRoundCompleted`.
   */
  saveParticipant(record: ParticipantRecord): Promise<void>;
  /** Ordered by clientId. */
  listParticipants(jobId: string): Promise<ParticipantRecord[]>;
  /** One participant (a join reads only its own record: a job may have thousands); null if none. */
  getParticipant(jobId: string, clientId: string): Promise<ParticipantRecord | null>;
  /**
   * A join, in one idempotent write (no read first): an absent participant is created with `at` as
   * joinedAt and lastSeenAt and 0 rounds; a present one gets lastSeenAt = `at` and, if given, the
   * payout address, keeping the rest. Resolves once stored; never dropped: a write the store keeps
   * refusing rejects (STORE_BUSY, STORE_UNAVAILABLE) and the join fails with it.
   */
  recordJoin(join: ParticipantJoin): Promise<void>;
  /**
   * Adds committed round `round` to each of `clientIds`' counters (roundsCompleted + 1, lastSeenAt =
   * `at`; an absent participant is created with `at` as joinedAt), at most once per participant and
   * round: counting a round again (a commit redone after a crash or a takeover) changes nothing.
   */
  countRoundCompleted(jobId: string, round: number, clientIds: readonly string[], at: Date): Promise<void>;

  /** Insert keyed by jobId; a second plan for the same job is ignored (the first one stays). */
  savePayoutPlan(plan: PayoutPlanRecord): Promise<void>;
  loadPayoutPlan(jobId: string): Promise<PayoutPlanRecord | null>;

  /** Upsert keyed by jobId; refused with LEASE_LOST if the stored one has a higher `fence`. */
  saveChainState(record: ChainStateRecord): Promise<void>;
  loadChainState(jobId: string): Promise<ChainStateRecord | null>;

  /** Upsert keyed by (jobId, round); refused with LEASE_LOST if the stored one has a higher `fence`. */
  saveCheckpoint(checkpoint: CheckpointRecord): Promise<void>;
  /** The checkpoint of `round`, or the highest round if omitted; null if none. */
  loadCheckpoint(jobId: string, round?: number): Promise<CheckpointRecord | null>;

  /**
   * Upsert keyed by (jobId, round, kind): a round run again after a crash replaces its transcript;
   * refused with LEASE_LOST if the stored one has a higher `fence`.
   */
  saveTranscript(record: TranscriptRecord): Promise<void>;
  /** Ordered by round, then kind (`round` before `scoring`). */
  listTranscripts(jobId: string): Promise<TranscriptRecord[]>;
  /** One round's transcript of `kind`, or null. */
  loadTranscript(jobId: string, round: number, kind: TranscriptRecord['kind']): Promise<TranscriptRecord | null>;

  /** The buyer's validation set (dataset codec bytes); replaces any previous one. */
  saveValidationSet(jobId: string, bytes: Uint8Array): Promise<void>;
  loadValidationSet(jobId: string): Promise<Uint8Array | null>;

  /**
   * Inserts a listing. Throws TributaryError('LISTING_REPLAY') if one with this id exists: ids are
   * content hashes, so that is the same signed listing received again.
   */
  saveListing(record: ListingRecord): Promise<void>;
  getListing(id: string): Promise<ListingRecord | null>;
  /** Listings meeting every criterion given (listingMatches, and `ids`), newest publishedAt first (ties by id), at most `limit` (default 100). */
  searchListings(query: ListingQuery): Promise<ListingRecord[]>;
  /** Removes a listing; false if there was none. */
  deleteListing(id: string): Promise<boolean>;
  /** How many listings `provider` has published (quotas). */
  countListings(provider: string): Promise<number>;

  /** Inserts an API key; throws INTERNAL if the id exists (ids are random). */
  saveApiKey(record: ApiKeyRecord): Promise<void>;
  getApiKey(id: string): Promise<ApiKeyRecord | null>;
  /** The keys of one owner, newest first (ties by id). */
  listApiKeys(owner: string): Promise<ApiKeyRecord[]>;
  /** Sets revokedAt if the key exists and is not revoked yet; false otherwise. */
  revokeApiKey(id: string, at: Date): Promise<boolean>;

  /** Appends to the audit trail (insert keyed by id; a second record with the same id is ignored). */
  appendAudit(record: AuditRecord): Promise<void>;
  /** Audit records of a job (or of an actor), oldest first (ties by id), at most `limit`, after `after`. */
  listAudit(query: { jobId?: string; actor?: string; after?: AuditCursor; limit: number }): Promise<AuditRecord[]>;

  /*
   * Cluster-wide admission (coordinator/store/slotClaims.ts): a quota of N is N slots, each a chain of
   * generations under a unique key (kind, scope, slot, generation); a slot is taken by inserting its
   * next generation, so of two racing claimants exactly one wins, on every node (the same one atomic
   * step the leases rest on). A slot is free when its latest holder's record ended (job finished,
   * key revoked or expired, listing deleted), or never appeared within `pendingMs`.
   */
  /** Takes a free slot of (kind, scope) for `claim.holder`; refused when all `limit` slots are held. */
  claimSlot(claim: SlotClaim): Promise<SlotClaimResult>;
  /** Frees the slot `holder` holds (its creation failed, or its record was removed); a no-op if it holds none. */
  releaseSlot(kind: SlotKind, scope: string, holder: string): Promise<void>;

  /** Idempotent; afterwards every other method rejects with TributaryError('STORE_UNAVAILABLE'). */
  close(): Promise<void>;
}
