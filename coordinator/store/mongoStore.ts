import mongoose, { type Connection } from 'mongoose';
import { TributaryError } from '../../shared/errors';
import {
  DEFAULT_LISTING_RESULTS,
  featureColumnsKeyOf,
  shapeKeyOf,
  type ListingQuery,
} from '../../shared/schemas/listing';
import { deleteQuietly, downloadBytes, GridFsFileMissing, uploadBytes } from './gridFs';
import {
  BUCKETS,
  defineModels,
  type ApiKeyDoc,
  type AuditDoc,
  fromStoredSpec,
  toStoredSpec,
  type CheckpointDoc,
  type JobDoc,
  type JobEventDoc,
  type ListingDoc,
  type ParticipantDoc,
  participantKey,
  type PayoutPlanDoc,
  type ChainStateDoc,
  type RoundDoc,
  type SlotDoc,
  type StoreModels,
  type TranscriptDoc,
} from './mongoModels';
import { BatchedWriter } from './batchedWriter';
import { definedPatch, leaseLost } from './records';
import { withStoreRetry } from './retryableWrites';
import { chainLeaseLog } from './store';
import type {
  ChainStateRecord,
  ApiKeyRecord,
  AuditCursor,
  AuditRecord,
  CheckpointRecord,
  JobLease,
  JobPageQuery,
  JobPatch,
  LeaseClaim,
  JobPrivacyState,
  JobRecord,
  JobStatus,
  ListingRecord,
  ParticipantJoin,
  ParticipantRecord,
  PayoutPlanRecord,
  RoundContribution,
  RoundRecord,
  SlotClaim,
  SlotClaimResult,
  SlotKind,
  Store,
  TranscriptRecord,
} from './store';
import { claimSlot, releaseSlot, type SlotBackend } from './slotClaims';

/** Options for `MongoStore.connect`. */
export interface MongoStoreOptions {
  /** Database to use. @default the database named in the URI, else "test" (the driver's default) */
  dbName?: string;
  /**
   * How long to look for a reachable server before failing with STORE_UNAVAILABLE, in ms.
   * @default the URI's serverSelectionTimeoutMS, else 10000
   */
  serverSelectionTimeoutMS?: number;
}

/**
 * Most joins one bulk write carries. FerretDB 1.24 keeps each statement's cursor (an SQLite
 * connection, 100 in its pool) open until the whole command ends, so a command of 100 updates that
 * match a document waits forever for a connection: stay well below, other writes share the pool.
 */
const PARTICIPANT_BATCH = 32;
/** Participants per counter update at a commit (one statement, one `$in`). */
const PARTICIPANT_COUNT_BATCH = 500;

/** Loads that race a concurrent replace (file deleted under them) re-read the metadata this often. */
const MISSING_FILE_RETRIES = 3;

/**
 * The MongoDB store (mongoose, on its own connection; never the global one).
 *
 * Collections: `jobs` (`_id` is the job id), `rounds`, `participants`, `checkpoints` and `validationsets`
 * (metadata), each upsert keyed by a unique index as documented on `Store`. Weights, strategy state and
 * validation sets are GridFS files (buckets `checkpoints` and `validationSets`) because they outgrow the
 * 16 MB document limit.
 *
 * Replacing a blob is crash-safe without transactions: upload the new file, swap the metadata
 * document to point at it, then delete the old file. A crash leaves at worst an orphan file, never a
 * checkpoint without bytes. (Transactions would need a replica set, and FerretDB has none.)
 */
export class MongoStore implements Store {
  readonly kind = 'mongo' as const;
  private closed = false;
  /**
   * Joins go out as bulk upserts, one bulk write in flight at a time: a thousand clients joining at
   * once are a handful of writes, not a thousand concurrent ones (which FerretDB's SQLite backend
   * answers with SQLITE_BUSY: one write lock for the whole database).
   */
  private readonly joins = new BatchedWriter<ParticipantJoin>((batch) => this.writeJoins(batch), {
    maxBatch: PARTICIPANT_BATCH,
    concurrency: 1,
  });

  private constructor(
    private readonly conn: Connection,
    private readonly models: StoreModels,
    private readonly checkpointFiles: mongoose.mongo.GridFSBucket,
    private readonly validationFiles: mongoose.mongo.GridFSBucket,
  ) {}

  /** Connects, creates the indexes, and returns a ready store; STORE_UNAVAILABLE if the server cannot be reached. */
  static async connect(uri: string, options: MongoStoreOptions = {}): Promise<MongoStore> {
    let conn: Connection | undefined;
    try {
      conn = mongoose.createConnection(uri, {
        dbName: options.dbName,
        // Fail a missing server in 10 s rather than the driver's 30 s, unless the URI or caller says otherwise.
        serverSelectionTimeoutMS:
          options.serverSelectionTimeoutMS ?? (/[?&]serverSelectionTimeoutMS=/i.test(uri) ? undefined : 10_000),
        // We await the connection before any query, so buffering would only turn outages into hangs.
        bufferCommands: false,
        // Indexes are created explicitly below, so their errors surface here instead of in the background.
        autoIndex: false,
        autoCreate: false,
        // Ids come from peers; a `{ $ne: null }` smuggled in as an id must match nothing.
        sanitizeFilter: true,
        // An `undefined` inside the Mixed JobSpec must vanish (as in JSON), not come back as null.
        ignoreUndefined: true,
      });
      await conn.asPromise();
      const models = defineModels(conn);
      for (const model of Object.values(models)) await model.createIndexes();
      const db = conn.db;
      if (!db) throw new Error('the connection has no database handle');
      return new MongoStore(
        conn,
        models,
        new mongoose.mongo.GridFSBucket(db, { bucketName: BUCKETS.checkpoints }),
        new mongoose.mongo.GridFSBucket(db, { bucketName: BUCKETS.validationSets }),
      );
    } catch (err) {
      await conn?.close().catch(() => {});
      const message = err instanceof Error ? err.message : String(err);
      // The URI parser throws its own MongoParseError class, not the driver's: match by name.
      if (err instanceof Error && err.name === 'MongoParseError') {
        throw new TributaryError('CONFIG_INVALID', `The MongoDB URI is invalid: ${message}`, { cause: err });
      }
      throw new TributaryError('STORE_UNAVAILABLE', `Cannot use MongoDB at ${redactUri(uri)}: ${message}`, {
        cause: err,
      });
    }
  }

  async createJob(job: JobRecord): Promise<void> {
    await this.run(async () => {
      try {
        await this.models.Job.create(toJobDoc(job));
      } catch (err) {
        if (isDuplicateKey(err)) throw new TributaryError('INTERNAL', `A job with id "${job.id}" already exists.`);
        throw err;
      }
    });
  }

  async getJob(id: string): Promise<JobRecord | null> {
    return this.run(async () => {
      const doc = await this.models.Job.findById(id).lean<JobDoc>();
      return doc ? toJobRecord(doc) : null;
    });
  }

  async listJobs(filter: { status?: JobStatus } = {}): Promise<JobRecord[]> {
    return this.run(async () => {
      const query = filter.status === undefined ? {} : { status: filter.status };
      // Same order as compareJobsNewestFirst (records.ts).
      const docs = await this.models.Job.find(query).sort({ createdAt: -1, _id: 1 }).lean<JobDoc[]>();
      return docs.map(toJobRecord);
    });
  }

  async updateJob(id: string, patch: JobPatch): Promise<JobRecord> {
    return this.run(async () => {
      const update = { $set: { ...jobPatchUpdate(patch), updatedAt: new Date() } };
      const doc = await withStoreRetry('a job update', () =>
        this.models.Job.findOneAndUpdate({ _id: id }, update, {
          returnDocument: 'after',
          runValidators: true,
        }).lean<JobDoc>(),
      );
      if (!doc) throw new TributaryError('JOB_NOT_FOUND', `No job with id "${id}".`);
      return toJobRecord(doc);
    });
  }

  async acquireJobLease(jobId: string, claim: LeaseClaim): Promise<JobLease | null> {
    return this.run(async () => {
      const job = await this.models.Job.findById(jobId, { status: 1 }).lean<Pick<JobDoc, 'status'>>();
      if (job?.status !== 'running') return null;
      return this.takeLease(jobId, claim);
    });
  }

  async acquireChainLease(jobId: string, claim: LeaseClaim): Promise<JobLease | null> {
    return this.run(async () => {
      const job = await this.models.Job.findById(jobId, { 'spec.chain': 1 }).lean<Pick<JobDoc, 'spec'>>();
      if (!job?.spec?.chain) return null;
      const state = await this.models.ChainState.findOne({ jobId }, { done: 1 }).lean<Pick<ChainStateDoc, 'done'>>();
      if (state?.done) return null;
      return this.takeLease(chainLeaseLog(jobId), claim);
    });
  }

  /** Appends a takeover to log `logId` if its lease is free, expired or preempted; null if another claimant holds or wins it. */
  private async takeLease(logId: string, claim: LeaseClaim): Promise<JobLease | null> {
    const { tail, current } = await this.logState(logId);
    if (current?.expiresAt && !claim.preempt && current.expiresAt.getTime() > claim.now.getTime()) return null;
    const lease: JobLease = {
      owner: claim.owner,
      url: claim.url,
      token: (current?.token ?? 0) + 1,
      expiresAt: new Date(claim.now.getTime() + claim.ttlMs),
    };
    // Appended at the next sequence number: a racing claimant (or commit) that got there first wins.
    const won = await this.append({ jobId: logId, seq: (tail?.seq ?? 0) + 1, kind: 'lease', ...lease });
    return won ? lease : null;
  }

  async renewJobLease(
    jobId: string,
    owner: string,
    token: number,
    claim: Pick<LeaseClaim, 'ttlMs' | 'now'>,
  ): Promise<JobLease | null> {
    return this.run(async () => {
      const current = await this.lastEvent(jobId, 'lease');
      if (!current || current.owner !== owner || current.token !== token) return null;
      const expiresAt = new Date(claim.now.getTime() + claim.ttlMs);
      // Only the holder writes its own takeover entry; a takeover appended meanwhile is seen next time.
      // A renewal the store refuses for load (SQLITE_BUSY) is sent again at once: a lease lost to a busy
      // store stops the job's runner and sends all its clients away.
      await withStoreRetry('a job lease renewal', () =>
        this.models.JobEvent.updateOne({ jobId, seq: current.seq }, { $set: { expiresAt } }),
      );
      return { owner, url: current.url ?? '', token, expiresAt };
    });
  }

  async releaseJobLease(jobId: string, owner: string, token: number): Promise<void> {
    await this.run(async () => {
      const current = await this.lastEvent(jobId, 'lease');
      if (current && current.owner === owner && current.token === token) {
        await withStoreRetry('a job lease release', () =>
          this.models.JobEvent.updateOne({ jobId, seq: current.seq }, { $set: { expiresAt: new Date(0) } }),
        );
      }
    });
  }

  async getJobLease(jobId: string): Promise<JobLease | null> {
    return this.run(async () => {
      const current = await this.lastEvent(jobId, 'lease');
      return current ? toLease(current) : null;
    });
  }

  async appendRoundCommit(jobId: string, token: number, record: RoundRecord): Promise<void> {
    await this.run(async () => {
      const { tail, current } = await this.logState(jobId);
      if (current?.token !== token) throw leaseLost(jobId, token);
      const seq = (tail?.seq ?? 0) + 1;
      // A takeover appended between our read and this insert holds `seq`: the insert fails, we lost.
      if (!(await this.append({ jobId, seq, kind: 'commit', token, round: toRoundDoc(record) }))) {
        throw leaseLost(jobId, token);
      }
    });
  }

  async lastRoundCommit(jobId: string): Promise<{ token: number; record: RoundRecord } | null> {
    return this.run(async () => {
      const last = await this.lastEvent(jobId, 'commit');
      return last?.round ? { token: last.token, record: toRoundRecord(last.round) } : null;
    });
  }

  /**
   * The log's tail, then the lease in force at that tail. In this order: sequence numbers have no
   * gaps, so anything appended after the tail was read holds tail + 1 and makes our append fail.
   */
  private async logState(jobId: string): Promise<{ tail: JobEventDoc | null; current: JobEventDoc | null }> {
    const tail = await this.lastEvent(jobId);
    if (!tail || tail.kind === 'lease') return { tail, current: tail };
    const current = await this.models.JobEvent.findOne({
      jobId,
      kind: 'lease',
      seq: mongoose.trusted({ $lt: tail.seq }),
    })
      .sort({ seq: -1 })
      .lean<JobEventDoc>();
    return { tail, current };
  }

  /** The job's latest log entry (of `kind`, if given). */
  private lastEvent(jobId: string, kind?: JobEventDoc['kind']): Promise<JobEventDoc | null> {
    return this.models.JobEvent.findOne(kind ? { jobId, kind } : { jobId })
      .sort({ seq: -1 })
      .lean<JobEventDoc>();
  }

  /** Inserts a log entry; false if its (jobId, seq) is taken (another append won). */
  private async append(doc: JobEventDoc): Promise<boolean> {
    try {
      // An insert SQLite refused as busy was not written: send it again (a duplicate key then means a
      // racing append won, as always). On MongoDB a retryable error may hide a landed insert, which the
      // resend then takes for a lost race: safe (the lease lapses unused, or the next owner completes
      // the commit), one lease TTL late.
      await withStoreRetry('a job log append', () => this.models.JobEvent.create(doc));
      return true;
    } catch (err) {
      if (isDuplicateKey(err)) return false;
      throw err;
    }
  }

  async listJobsPage(query: JobPageQuery): Promise<JobRecord[]> {
    return this.run(async () => {
      // Operators are wrapped in mongoose.trusted: sanitizeFilter would otherwise neutralise them.
      const clauses: Record<string, unknown>[] = [];
      if (query.status !== undefined) clauses.push({ status: query.status });
      // visibilityOf (records.ts): stored, else private exactly when the job has a chain config.
      const absent = () => mongoose.trusted({ $exists: false });
      const visible: Record<string, unknown>[] = [
        { visibility: 'public' },
        { visibility: absent(), 'spec.chain': absent() },
      ];
      if (query.visibleTo !== null) visible.push({ owner: query.visibleTo }, { delegates: query.visibleTo });
      clauses.push({ $or: visible });
      if (query.managedBy !== undefined)
        clauses.push({ $or: [{ owner: query.managedBy }, { delegates: query.managedBy }] });
      if (query.after !== undefined) {
        clauses.push({
          $or: [
            { createdAt: mongoose.trusted({ $lt: query.after.createdAt }) },
            { createdAt: query.after.createdAt, _id: mongoose.trusted({ $gt: query.after.id }) },
          ],
        });
      }
      const docs = await this.models.Job.find({ $and: clauses })
        .sort({ createdAt: -1, _id: 1 })
        .limit(query.limit)
        .lean<JobDoc[]>();
      return docs.map(toJobRecord);
    });
  }

  async countJobs(filter: { owner: string; statuses: readonly JobStatus[] }): Promise<number> {
    return this.run(() =>
      this.models.Job.countDocuments({ owner: filter.owner, status: mongoose.trusted({ $in: [...filter.statuses] }) }),
    );
  }

  async saveRound(record: RoundRecord, guard?: { fence: number }): Promise<void> {
    const fence = guard?.fence;
    await this.run(() =>
      fencedUpsert(record.jobId, fence, () =>
        this.models.Round.replaceOne(
          { jobId: record.jobId, round: record.round, attempt: record.attempt, ...fenceFilter(fence) },
          { ...toRoundDoc(record), ...(fence !== undefined ? { fence } : {}) },
          { upsert: true },
        ),
      ),
    );
  }

  async listRounds(jobId: string): Promise<RoundRecord[]> {
    return this.run(async () => {
      const docs = await this.models.Round.find({ jobId }).sort({ round: 1, attempt: 1 }).lean<RoundDoc[]>();
      return docs.map(toRoundRecord);
    });
  }

  async saveParticipant(record: ParticipantRecord): Promise<void> {
    const doc = toParticipantDoc(record);
    const key = participantKey(record.jobId, record.clientId);
    await this.run(async () => {
      try {
        await retryDuplicateKey(() =>
          this.models.Participant.replaceOne({ _id: key }, { _id: key, ...doc }, { upsert: true }),
        );
      } catch (err) {
        if (!isDuplicateKey(err)) throw err;
        // A document from before keyed `_id`s (an ObjectId) holds (jobId, clientId): replace it in place.
        await this.models.Participant.replaceOne({ jobId: record.jobId, clientId: record.clientId }, doc);
      }
    });
  }

  async getParticipant(jobId: string, clientId: string): Promise<ParticipantRecord | null> {
    return this.run(async () => {
      const doc =
        (await this.models.Participant.findOne({ _id: participantKey(jobId, clientId) }).lean<ParticipantDoc>()) ??
        (await this.models.Participant.findOne({ jobId, clientId }).lean<ParticipantDoc>());
      return doc ? toParticipantRecord(doc) : null;
    });
  }

  async recordJoin(join: ParticipantJoin): Promise<void> {
    await this.run(() => this.joins.submit(join));
  }

  /**
   * One bulk of idempotent upserts keyed on `_id` (a retry resends it whole). A duplicate key on
   * (jobId, clientId) is a document from before keyed `_id`s, or a racing upsert of the same key: the
   * batch then goes one by one, updating an old document by (jobId, clientId).
   */
  private async writeJoins(batch: ParticipantJoin[]): Promise<void> {
    const update = (j: ParticipantJoin, insert: boolean) => ({
      $set: { lastSeenAt: j.at, ...(j.payoutAddress !== undefined ? { payoutAddress: j.payoutAddress } : {}) },
      ...(insert ? { $setOnInsert: { jobId: j.jobId, clientId: j.clientId, joinedAt: j.at, roundsCompleted: 0 } } : {}),
    });
    const what = `${batch.length} participant join(s)`;
    try {
      await withStoreRetry(what, () =>
        this.models.Participant.bulkWrite(
          batch.map((j) => ({
            updateOne: { filter: { _id: participantKey(j.jobId, j.clientId) }, update: update(j, true), upsert: true },
          })),
        ),
      );
    } catch (err) {
      if (!isDuplicateKey(err)) throw err;
      for (const j of batch) {
        await withStoreRetry(
          what,
          async () => {
            const keyed = await this.models.Participant.updateOne(
              { _id: participantKey(j.jobId, j.clientId) },
              update(j, true),
              { upsert: true },
            ).catch(async (e: unknown) => {
              if (!isDuplicateKey(e)) throw e;
              const legacy = await this.models.Participant.updateOne(
                { jobId: j.jobId, clientId: j.clientId },
                update(j, false),
              );
              // Neither keyed nor old: the duplicate was a racing upsert that has landed by now; again.
              if (legacy.matchedCount === 0) throw e;
              return legacy;
            });
            return keyed;
          },
          { alsoRetry: isDuplicateKey },
        );
      }
    }
  }

  async countRoundCompleted(jobId: string, round: number, clientIds: readonly string[], at: Date): Promise<void> {
    await this.run(async () => {
      for (let i = 0; i < clientIds.length; i += PARTICIPANT_COUNT_BATCH) {
        const chunk = clientIds.slice(i, i + PARTICIPANT_COUNT_BATCH);
        // Normally every participant joined (a record exists); any that has none is created first.
        const present = new Set(
          (
            await this.models.Participant.find(
              { jobId, clientId: mongoose.trusted({ $in: chunk }) },
              { clientId: 1 },
            ).lean<Array<{ clientId: string }>>()
          ).map((p) => p.clientId),
        );
        for (const clientId of chunk.filter((c) => !present.has(c))) {
          await this.recordJoin({ jobId, clientId, at });
        }
        // One statement for the chunk; the guard makes a resent write, or a commit redone after a
        // takeover, count nothing twice.
        await withStoreRetry(`round ${round}'s participant counters`, () =>
          this.models.Participant.updateMany(
            {
              jobId,
              clientId: mongoose.trusted({ $in: chunk }),
              countedRound: mongoose.trusted({ $not: { $gte: round } }),
            },
            { $inc: { roundsCompleted: 1 }, $set: { lastSeenAt: at, countedRound: round } },
          ),
        );
      }
    });
  }

  async listParticipants(jobId: string): Promise<ParticipantRecord[]> {
    return this.run(async () => {
      const docs = await this.models.Participant.find({ jobId }).sort({ clientId: 1 }).lean<ParticipantDoc[]>();
      return docs.map(toParticipantRecord);
    });
  }

  async savePayoutPlan(plan: PayoutPlanRecord): Promise<void> {
    await this.run(async () => {
      // Insert only if absent: the first plan of a job is the one that was (or will be) settled.
      try {
        await this.models.PayoutPlan.updateOne(
          { jobId: plan.jobId },
          { $setOnInsert: toPayoutPlanDoc(plan) },
          { upsert: true },
        );
      } catch (err) {
        if (!isDuplicateKey(err)) throw err;
      }
    });
  }

  async saveChainState(record: ChainStateRecord): Promise<void> {
    await this.run(() =>
      fencedUpsert(record.jobId, record.fence, () =>
        this.models.ChainState.replaceOne({ jobId: record.jobId, ...fenceFilter(record.fence) }, record, {
          upsert: true,
        }),
      ),
    );
  }

  async loadChainState(jobId: string): Promise<ChainStateRecord | null> {
    return this.run(async () => {
      const doc = await this.models.ChainState.findOne({ jobId }).lean<ChainStateDoc>();
      if (!doc) return null;
      return {
        jobId: doc.jobId,
        status: doc.status as ChainStateRecord['status'],
        done: doc.done,
        ...(doc.fence !== undefined ? { fence: doc.fence } : {}),
        updatedAt: new Date(doc.updatedAt),
      };
    });
  }

  async loadPayoutPlan(jobId: string): Promise<PayoutPlanRecord | null> {
    return this.run(async () => {
      const doc = await this.models.PayoutPlan.findOne({ jobId }).lean<PayoutPlanDoc>();
      return doc ? toPayoutPlanDoc(doc) : null;
    });
  }

  async saveCheckpoint(checkpoint: CheckpointRecord): Promise<void> {
    await this.run(async () => {
      const { jobId, round } = checkpoint;
      const bucket = this.checkpointFiles;
      const weightsFileId = await uploadBytes(bucket, `${jobId}/${round}/weights`, checkpoint.weights, {
        jobId,
        round,
        part: 'weights',
      });
      let strategyStateFileId: mongoose.Types.ObjectId | undefined;
      let previous: CheckpointDoc | null;
      try {
        if (checkpoint.strategyState !== undefined) {
          strategyStateFileId = await uploadBytes(bucket, `${jobId}/${round}/strategyState`, checkpoint.strategyState, {
            jobId,
            round,
            part: 'strategyState',
          });
        }
        const doc: CheckpointDoc = {
          jobId,
          round,
          modelHash: checkpoint.modelHash,
          weightsFileId,
          createdAt: checkpoint.createdAt,
          ...(strategyStateFileId ? { strategyStateFileId } : {}),
          ...(checkpoint.fence !== undefined ? { fence: checkpoint.fence } : {}),
        };
        previous = await fencedUpsert(jobId, checkpoint.fence, () =>
          this.models.Checkpoint.findOneAndReplace({ jobId, round, ...fenceFilter(checkpoint.fence) }, doc, {
            upsert: true,
            returnDocument: 'before',
          }).lean<CheckpointDoc>(),
        );
      } catch (err) {
        // Nothing points at the new files yet: remove them so a failed save leaves no orphans.
        await deleteQuietly(bucket, weightsFileId).catch(() => {});
        await deleteQuietly(bucket, strategyStateFileId).catch(() => {});
        throw err;
      }
      // Only now is the old checkpoint unreachable; delete its files.
      if (previous) {
        await deleteQuietly(bucket, previous.weightsFileId);
        await deleteQuietly(bucket, previous.strategyStateFileId);
      }
    });
  }

  async loadCheckpoint(jobId: string, round?: number): Promise<CheckpointRecord | null> {
    return this.run(() =>
      retryMissingFile(async () => {
        const query =
          round === undefined
            ? this.models.Checkpoint.findOne({ jobId }).sort({ round: -1 })
            : this.models.Checkpoint.findOne({ jobId, round });
        const doc = await query.lean<CheckpointDoc>();
        if (!doc) return null;
        const record: CheckpointRecord = {
          jobId: doc.jobId,
          round: doc.round,
          modelHash: doc.modelHash,
          weights: await downloadBytes(this.checkpointFiles, doc.weightsFileId),
          createdAt: doc.createdAt,
        };
        if (doc.fence != null) record.fence = doc.fence;
        if (doc.strategyStateFileId) {
          record.strategyState = await downloadBytes(this.checkpointFiles, doc.strategyStateFileId);
        }
        return record;
      }),
    );
  }

  async saveTranscript(record: TranscriptRecord): Promise<void> {
    await this.run(() =>
      fencedUpsert(record.jobId, record.fence, () =>
        this.models.Transcript.replaceOne(
          { jobId: record.jobId, round: record.round, kind: record.kind, ...fenceFilter(record.fence) },
          toTranscriptRecord(record),
          { upsert: true },
        ),
      ),
    );
  }

  async listTranscripts(jobId: string): Promise<TranscriptRecord[]> {
    return this.run(async () => {
      const docs = await this.models.Transcript.find({ jobId }).sort({ round: 1, kind: 1 }).lean<TranscriptDoc[]>();
      return docs.map(toTranscriptRecord);
    });
  }

  async loadTranscript(jobId: string, round: number, kind: TranscriptRecord['kind']): Promise<TranscriptRecord | null> {
    return this.run(async () => {
      const doc = await this.models.Transcript.findOne({ jobId, round, kind }).lean<TranscriptDoc>();
      return doc ? toTranscriptRecord(doc) : null;
    });
  }

  async saveValidationSet(jobId: string, bytes: Uint8Array): Promise<void> {
    await this.run(async () => {
      const bucket = this.validationFiles;
      const fileId = await uploadBytes(bucket, `${jobId}/validationSet`, bytes, { jobId });
      let previous: { fileId: mongoose.Types.ObjectId } | null;
      try {
        previous = await retryDuplicateKey(() =>
          this.models.ValidationSet.findOneAndReplace(
            { jobId },
            { jobId, fileId, updatedAt: new Date() },
            { upsert: true, returnDocument: 'before' },
          ).lean<{ fileId: mongoose.Types.ObjectId }>(),
        );
      } catch (err) {
        await deleteQuietly(bucket, fileId).catch(() => {});
        throw err;
      }
      if (previous) await deleteQuietly(bucket, previous.fileId);
    });
  }

  async loadValidationSet(jobId: string): Promise<Uint8Array | null> {
    return this.run(() =>
      retryMissingFile(async () => {
        const doc = await this.models.ValidationSet.findOne({ jobId }).lean<{ fileId: mongoose.Types.ObjectId }>();
        return doc ? downloadBytes(this.validationFiles, doc.fileId) : null;
      }),
    );
  }

  async saveListing(record: ListingRecord): Promise<void> {
    await this.run(async () => {
      try {
        await this.models.Listing.create(toListingDoc(record));
      } catch (err) {
        if (isDuplicateKey(err))
          throw new TributaryError('LISTING_REPLAY', `Listing ${record.id} was already published.`);
        throw err;
      }
    });
  }

  async getListing(id: string): Promise<ListingRecord | null> {
    return this.run(async () => {
      const doc = await this.models.Listing.findById(id).lean<ListingDoc>();
      return doc ? toListingRecord(doc) : null;
    });
  }

  async searchListings(query: ListingQuery): Promise<ListingRecord[]> {
    return this.run(async () => {
      // The same rule as listingMatches (shared/schemas/listing.ts), as a query on the copied fields.
      // Operators are wrapped in mongoose.trusted: sanitizeFilter would otherwise neutralise them.
      const filter: Record<string, unknown> = {};
      if (query.provider !== undefined) filter.provider = query.provider;
      if (query.minRows !== undefined) filter.rows = mongoose.trusted({ $gte: query.minRows });
      if (query.numClasses !== undefined) filter.numClasses = query.numClasses;
      if (query.labelColumn !== undefined) filter.labelColumn = query.labelColumn;
      if (query.shape !== undefined) filter.shapeKey = shapeKeyOf(query.shape);
      if (query.featureColumns !== undefined) filter.featureColumnsKey = featureColumnsKeyOf(query.featureColumns);
      if (query.tags !== undefined && query.tags.length > 0) filter.tags = mongoose.trusted({ $all: [...query.tags] });
      if (query.ids !== undefined) filter._id = mongoose.trusted({ $in: [...query.ids] });
      if (query.after !== undefined) {
        const { publishedAt, id } = query.after;
        filter.$or = [
          { publishedAt: mongoose.trusted({ $lt: publishedAt }) },
          { publishedAt, _id: mongoose.trusted({ $gt: id }) },
        ];
      }
      const docs = await this.models.Listing.find(filter)
        .sort({ publishedAt: -1, _id: 1 })
        .limit(query.limit ?? DEFAULT_LISTING_RESULTS)
        .lean<ListingDoc[]>();
      return docs.map(toListingRecord);
    });
  }

  async deleteListing(id: string): Promise<boolean> {
    return this.run(async () => (await this.models.Listing.deleteOne({ _id: id })).deletedCount === 1);
  }

  async countListings(provider: string): Promise<number> {
    return this.run(() => this.models.Listing.countDocuments({ provider }));
  }

  async saveApiKey(record: ApiKeyRecord): Promise<void> {
    await this.run(async () => {
      try {
        await this.models.ApiKey.create(toApiKeyDoc(record));
      } catch (err) {
        if (isDuplicateKey(err)) throw new TributaryError('INTERNAL', `An API key with id "${record.id}" exists.`);
        throw err;
      }
    });
  }

  async getApiKey(id: string): Promise<ApiKeyRecord | null> {
    return this.run(async () => {
      const doc = await this.models.ApiKey.findById(id).lean<ApiKeyDoc>();
      return doc ? toApiKeyRecord(doc) : null;
    });
  }

  async listApiKeys(owner: string): Promise<ApiKeyRecord[]> {
    return this.run(async () => {
      const docs = await this.models.ApiKey.find({ owner }).sort({ createdAt: -1, _id: 1 }).lean<ApiKeyDoc[]>();
      return docs.map(toApiKeyRecord);
    });
  }

  async revokeApiKey(id: string, at: Date): Promise<boolean> {
    return this.run(async () => {
      const result = await this.models.ApiKey.updateOne(
        { _id: id, revokedAt: mongoose.trusted({ $exists: false }) },
        { $set: { revokedAt: at } },
      );
      return result.modifiedCount === 1;
    });
  }

  async appendAudit(record: AuditRecord): Promise<void> {
    await this.run(async () => {
      try {
        await this.models.Audit.create(toAuditDoc(record));
      } catch (err) {
        if (!isDuplicateKey(err)) throw err;
      }
    });
  }

  async listAudit(query: {
    jobId?: string;
    actor?: string;
    after?: AuditCursor;
    limit: number;
  }): Promise<AuditRecord[]> {
    return this.run(async () => {
      const filter: Record<string, unknown> = {};
      if (query.jobId !== undefined) filter.jobId = query.jobId;
      if (query.actor !== undefined) filter.actor = query.actor;
      if (query.after !== undefined) {
        const { at, id } = query.after;
        filter.$or = [{ at: mongoose.trusted({ $gt: at }) }, { at, _id: mongoose.trusted({ $gt: id }) }];
      }
      const docs = await this.models.Audit.find(filter).sort({ at: 1, _id: 1 }).limit(query.limit).lean<AuditDoc[]>();
      return docs.map(toAuditRecord);
    });
  }

  async claimSlot(claim: SlotClaim): Promise<SlotClaimResult> {
    return this.run(() => claimSlot(this.slotBackend, claim));
  }

  async releaseSlot(kind: SlotKind, scope: string, holder: string): Promise<void> {
    await this.run(() => releaseSlot(this.slotBackend, kind, scope, holder));
  }

  private readonly slotBackend: SlotBackend = {
    slotEntries: async (kind, scope) => {
      const docs = await this.models.Slot.find({ kind, scope }, { _id: 0 }).lean<SlotDoc[]>();
      return docs.map((d) => ({ ...d, holder: d.holder ?? null }));
    },
    insertSlot: async (entry) => {
      try {
        await this.models.Slot.create(entry);
        return true;
      } catch (err) {
        if (isDuplicateKey(err)) return false;
        throw err;
      }
    },
    holderStates: async (kind, holders, now) => {
      const ids = mongoose.trusted({ $in: [...holders] });
      const states = new Map<string, boolean>();
      if (kind === 'escrow' || kind === 'jobs') {
        const docs = await this.models.Job.find({ _id: ids }, { status: 1 }).lean<Pick<JobDoc, '_id' | 'status'>[]>();
        for (const d of docs) states.set(d._id, kind === 'escrow' || d.status === 'pending' || d.status === 'running');
      } else if (kind === 'api-keys') {
        const docs = await this.models.ApiKey.find({ _id: ids }, { expiresAt: 1, revokedAt: 1 }).lean<
          Pick<ApiKeyDoc, '_id' | 'expiresAt' | 'revokedAt'>[]
        >();
        for (const d of docs) states.set(d._id, !d.revokedAt && d.expiresAt.getTime() > now.getTime());
      } else {
        const docs = await this.models.Listing.find({ _id: ids }, { _id: 1 }).lean<Pick<ListingDoc, '_id'>[]>();
        for (const d of docs) states.set(d._id, true);
      }
      return states;
    },
  };

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.conn.close();
  }

  /** Runs one store operation, turning "closed" and connectivity failures into STORE_UNAVAILABLE. */
  private async run<T>(op: () => Promise<T>): Promise<T> {
    if (this.closed) throw new TributaryError('STORE_UNAVAILABLE', 'The Mongo store is closed.');
    try {
      return await op();
    } catch (err) {
      if (isConnectivityError(err)) {
        throw new TributaryError('STORE_UNAVAILABLE', `MongoDB is unreachable: ${(err as Error).message}`, {
          cause: err,
        });
      }
      throw err;
    }
  }
}

function isConnectivityError(err: unknown): boolean {
  const m = mongoose.mongo;
  return (
    err instanceof m.MongoNetworkError ||
    err instanceof m.MongoServerSelectionError ||
    err instanceof m.MongoNotConnectedError ||
    err instanceof m.MongoTopologyClosedError
  );
}

function isDuplicateKey(err: unknown): boolean {
  return (err as { code?: unknown } | null)?.code === 11000;
}

/**
 * Two concurrent upserts of one new key can both miss and both insert; the loser gets E11000 and a
 * retry then finds the winner's document. MongoDB retries this itself; FerretDB does not, so we do.
 */
async function retryDuplicateKey<T>(op: () => Promise<T>): Promise<T> {
  try {
    return await op();
  } catch (err) {
    if (!isDuplicateKey(err)) throw err;
    return op();
  }
}

/**
 * The filter part of a fenced upsert: match only a stored record with no fence or one no newer than
 * ours. A newer one makes the upsert insert a second document, which the unique index refuses.
 */
function fenceFilter(fence: number | undefined): Record<string, unknown> {
  if (fence === undefined) return {};
  return { $or: [{ fence: mongoose.trusted({ $exists: false }) }, { fence: mongoose.trusted({ $lte: fence }) }] };
}

/** An upsert with fenceFilter: a duplicate key (after the usual retry) means a newer fence holds the key. */
async function fencedUpsert<T>(jobId: string, fence: number | undefined, op: () => Promise<T>): Promise<T> {
  try {
    return await retryDuplicateKey(op);
  } catch (err) {
    if (fence !== undefined && isDuplicateKey(err)) throw leaseLost(jobId, fence);
    throw err;
  }
}

function toLease(e: JobEventDoc): JobLease {
  return { owner: e.owner ?? '', url: e.url ?? '', token: e.token, expiresAt: new Date(e.expiresAt ?? 0) };
}

/** A load that lost a race with a replace (its file was deleted) simply reads the new metadata again. */
async function retryMissingFile<T>(op: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await op();
    } catch (err) {
      if (!(err instanceof GridFsFileMissing) || attempt >= MISSING_FILE_RETRIES) throw err;
    }
  }
}

function redactUri(uri: string): string {
  return uri.replace(/\/\/[^@/]*@/, '//***@');
}

// Mapping between records and documents. Built field by field so no `_id`/`__v` leaks out and no
// unknown field leaks in; optional fields are omitted rather than stored as null.

function toJobDoc(job: JobRecord): JobDoc {
  const doc: JobDoc = {
    _id: job.id,
    spec: toStoredSpec(job.spec),
    status: job.status,
    currentRound: job.currentRound,
    modelHash: job.modelHash,
    weightManifest: job.weightManifest.map((e) => ({ name: e.name, shape: [...e.shape] })),
    createdAt: job.createdAt,
    updatedAt: job.updatedAt,
  };
  if (job.failureReason !== undefined) doc.failureReason = job.failureReason;
  if (job.owner !== undefined) doc.owner = job.owner;
  if (job.visibility !== undefined) doc.visibility = job.visibility;
  if (job.delegates !== undefined) doc.delegates = [...job.delegates];
  if (job.privacy !== undefined) doc.privacy = copyJobPrivacy(job.privacy);
  return doc;
}

/** The $set of updateJob: patchable fields as given; `access` lands inside the stored spec. */
function jobPatchUpdate(patch: JobPatch): Record<string, unknown> {
  const { access, delegates, ...fields } = definedPatch(patch);
  return {
    ...fields,
    ...(delegates !== undefined ? { delegates: [...delegates] } : {}),
    ...(access !== undefined ? { 'spec.access': access } : {}),
  };
}

function toApiKeyDoc(r: ApiKeyRecord): ApiKeyDoc {
  const doc: ApiKeyDoc = {
    _id: r.id,
    owner: r.owner,
    name: r.name,
    scopes: [...r.scopes],
    tokenHash: r.tokenHash,
    createdAt: r.createdAt,
    expiresAt: r.expiresAt,
  };
  if (r.revokedAt !== undefined) doc.revokedAt = r.revokedAt;
  return doc;
}

function toApiKeyRecord(doc: ApiKeyDoc): ApiKeyRecord {
  const record: ApiKeyRecord = {
    id: doc._id,
    owner: doc.owner,
    name: doc.name,
    scopes: [...doc.scopes],
    tokenHash: doc.tokenHash,
    createdAt: doc.createdAt,
    expiresAt: doc.expiresAt,
  };
  if (doc.revokedAt != null) record.revokedAt = doc.revokedAt;
  return record;
}

function toAuditDoc(r: AuditRecord): AuditDoc {
  const doc: AuditDoc = { _id: r.id, action: r.action, actor: r.actor, at: r.at, digests: { ...r.digests } };
  if (r.jobId !== undefined) doc.jobId = r.jobId;
  if (r.details !== undefined) doc.details = { ...r.details };
  return doc;
}

function toAuditRecord(doc: AuditDoc): AuditRecord {
  const record: AuditRecord = {
    id: doc._id,
    action: doc.action,
    actor: doc.actor,
    at: doc.at,
    digests: { ...doc.digests },
  };
  if (doc.jobId != null) record.jobId = doc.jobId;
  if (doc.details != null) record.details = { ...doc.details };
  return record;
}

function toJobRecord(doc: JobDoc): JobRecord {
  const record: JobRecord = {
    id: doc._id,
    spec: fromStoredSpec(doc.spec),
    status: doc.status,
    currentRound: doc.currentRound,
    modelHash: doc.modelHash,
    weightManifest: doc.weightManifest.map((e) => ({ name: e.name, shape: [...e.shape] })),
    createdAt: doc.createdAt,
    updatedAt: doc.updatedAt,
  };
  if (doc.failureReason != null) record.failureReason = doc.failureReason;
  if (doc.owner != null) record.owner = doc.owner;
  if (doc.visibility != null) record.visibility = doc.visibility;
  if (doc.delegates != null) record.delegates = [...doc.delegates];
  if (doc.privacy != null) record.privacy = copyJobPrivacy(doc.privacy);
  return record;
}

function copyJobPrivacy(p: JobPrivacyState): JobPrivacyState {
  const { orders, rdp, rounds } = p.accountant;
  return { accountant: { orders: [...orders], rdp: [...rdp], rounds }, clippingNorm: p.clippingNorm };
}

function toRoundDoc(r: RoundRecord): RoundDoc {
  const doc: RoundDoc = {
    jobId: r.jobId,
    round: r.round,
    attempt: r.attempt,
    status: r.status,
    selected: [...r.selected],
    participants: [...r.participants],
    failures: r.failures.map((f) => ({ clientId: f.clientId, reason: f.reason })),
    metrics: { ...r.metrics },
    startedAt: r.startedAt,
    finishedAt: r.finishedAt,
  };
  if (r.modelHash !== undefined) doc.modelHash = r.modelHash;
  if (r.transcriptHash !== undefined) doc.transcriptHash = r.transcriptHash;
  if (r.failureReason !== undefined) doc.failureReason = r.failureReason;
  if (r.cohorts !== undefined) doc.cohorts = r.cohorts.map((members) => ({ members: [...members] }));
  if (r.contribution !== undefined) doc.contribution = copyContribution(r.contribution);
  if (r.privacy !== undefined) doc.privacy = { ...r.privacy };
  return doc;
}

function toRoundRecord(doc: RoundDoc): RoundRecord {
  const record: RoundRecord = {
    jobId: doc.jobId,
    round: doc.round,
    attempt: doc.attempt,
    status: doc.status,
    selected: [...doc.selected],
    participants: [...doc.participants],
    failures: doc.failures.map((f) => ({ clientId: f.clientId, reason: f.reason })),
    metrics: { ...doc.metrics },
    startedAt: doc.startedAt,
    finishedAt: doc.finishedAt,
  };
  if (doc.modelHash != null) record.modelHash = doc.modelHash;
  if (doc.transcriptHash != null) record.transcriptHash = doc.transcriptHash;
  if (doc.failureReason != null) record.failureReason = doc.failureReason;
  if (doc.cohorts != null) record.cohorts = doc.cohorts.map((c) => [...(c.members ?? [])]);
  if (doc.contribution != null) record.contribution = copyContribution(doc.contribution);
  if (doc.privacy != null) record.privacy = { ...doc.privacy };
  return record;
}

function copyContribution(c: RoundContribution): RoundContribution {
  return {
    method: c.method,
    metric: c.metric,
    baseline: c.baseline,
    improvement: c.improvement,
    evaluations: c.evaluations,
    values: c.values.map((v) => ({ members: [...v.members], value: v.value })),
  };
}

function toParticipantDoc(p: ParticipantRecord): ParticipantDoc {
  return {
    jobId: p.jobId,
    clientId: p.clientId,
    joinedAt: p.joinedAt,
    lastSeenAt: p.lastSeenAt,
    roundsCompleted: p.roundsCompleted,
    ...(p.payoutAddress != null ? { payoutAddress: p.payoutAddress } : {}),
  };
}

/** A plain copy with exactly the record's fields (drops _id and __v from lean documents). */
function toPayoutPlanDoc(p: PayoutPlanRecord | PayoutPlanDoc): PayoutPlanRecord {
  return {
    jobId: p.jobId,
    root: p.root,
    totalWei: p.totalWei,
    poolWei: p.poolWei,
    dustWei: p.dustWei,
    scoreLabel: p.scoreLabel,
    allocations: p.allocations.map((a) => ({
      account: a.account,
      amountWei: a.amountWei,
      proof: [...a.proof],
      clientIds: [...a.clientIds],
      score: a.score,
    })),
    createdAt: p.createdAt,
  };
}

function toListingDoc(r: ListingRecord): ListingDoc {
  const schema = r.listing.schema;
  const doc: ListingDoc = {
    _id: r.id,
    listing: r.listing,
    signature: r.signature,
    publishedAt: r.publishedAt,
    provider: r.listing.provider,
    tags: [...r.listing.tags],
    rows: r.listing.rows,
    numClasses: schema.numClasses,
    labelColumn: schema.labelColumn,
    shapeKey: shapeKeyOf(schema.shape),
  };
  if (schema.featureColumns) doc.featureColumnsKey = featureColumnsKeyOf(schema.featureColumns);
  return doc;
}

function toListingRecord(doc: ListingDoc): ListingRecord {
  return { id: doc._id, listing: doc.listing, signature: doc.signature, publishedAt: doc.publishedAt };
}

function toParticipantRecord(doc: ParticipantDoc): ParticipantRecord {
  return toParticipantDoc(doc);
}

/** The record's fields only (no `_id`), as both the document written and the record read back. */
function toTranscriptRecord(t: TranscriptRecord | TranscriptDoc): TranscriptRecord {
  return {
    jobId: t.jobId,
    round: t.round,
    kind: t.kind,
    hash: t.hash,
    text: t.text,
    signature: t.signature,
    signer: t.signer,
    ...(t.fence != null ? { fence: t.fence } : {}),
    createdAt: new Date(t.createdAt),
  };
}
