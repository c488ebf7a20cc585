import { Schema, type Connection, type Model, type Types } from 'mongoose';
import { type JobSpec, JobSpecSchema, type ModelSpec } from '../../shared/schemas/jobSpec';
import type { TensorManifestEntry } from '../../shared/codec/tensors';
import type { Listing } from '../../shared/schemas/listing';
import type {
  ApiKeyScope,
  JobPrivacyState,
  JobStatus,
  JobVisibility,
  RoundContribution,
  RoundFailure,
  RoundPrivacyRecord,
} from './store';

/*
 * Mongoose schemas for MongoStore. They stay inside the store folder: nothing else sees a mongoose type.
 *
 * Every schema sets `minimize: false` (an empty object, e.g. `metrics: {}` or an empty layer `config`,
 * must come back rather than vanish) and `versionKey: false` (we never use optimistic concurrency).
 * The records' own createdAt/updatedAt are stored as given, so mongoose `timestamps` stay off.
 */

/**
 * A JobSpec as stored: the same nested document, except that a `layers-json` model keeps its TF.js
 * topology as a JSON string. Why: the topology is free-form and holds arrays of arrays (`inbound_nodes`,
 * shapes inside lists), which FerretDB rejects ("nested arrays are not supported"); as a string it is
 * also safe from MongoDB's field-name rules. The store never queries inside the topology, and the
 * topology is JSON data already (it arrives in a JSON request body), so the string round-trips exactly.
 */
export type StoredJobSpec = JobSpec extends infer S
  ? S extends JobSpec
    ? Omit<S, 'model'> & {
        model: Exclude<ModelSpec, { kind: 'layers-json' }> | { kind: 'layers-json'; topologyJson: string };
      }
    : never
  : never;

/** JobSpec -> stored form. */
export function toStoredSpec(spec: JobSpec): StoredJobSpec {
  if (spec.model.kind !== 'layers-json') return spec as StoredJobSpec;
  return {
    ...spec,
    model: { kind: 'layers-json', topologyJson: JSON.stringify(spec.model.topology) },
  } as StoredJobSpec;
}

/** Stored form -> JobSpec. */
export function fromStoredSpec(stored: StoredJobSpec): JobSpec {
  const spec = (
    stored.model.kind !== 'layers-json'
      ? stored
      : { ...stored, model: { kind: 'layers-json', topology: JSON.parse(stored.model.topologyJson) } }
  ) as JobSpec;
  // Specs stored before a field existed (e.g. the `none` options block) get today's defaults.
  const parsed = JobSpecSchema.safeParse(spec);
  return parsed.success ? parsed.data : spec;
}

/** A job; `_id` is the job id. */
export interface JobDoc {
  _id: string;
  /** Mixed: nested discriminated unions (model, strategy, input); see StoredJobSpec. */
  spec: StoredJobSpec;
  status: JobStatus;
  currentRound: number;
  modelHash: string;
  weightManifest: TensorManifestEntry[];
  failureReason?: string;
  owner?: string;
  visibility?: JobVisibility;
  delegates?: string[];
  /** JobRecord.privacy (plain numbers and number lists). */
  privacy?: JobPrivacyState;
  createdAt: Date;
  updatedAt: Date;
}

/** An API key (ApiKeyRecord); `_id` is the key id. */
export interface ApiKeyDoc {
  _id: string;
  owner: string;
  name: string;
  scopes: ApiKeyScope[];
  tokenHash: string;
  createdAt: Date;
  expiresAt: Date;
  revokedAt?: Date;
}

/** One audit record (AuditRecord); `_id` is the record id. Digests and details are flat string-keyed maps. */
export interface AuditDoc {
  _id: string;
  action: string;
  actor: string;
  at: Date;
  jobId?: string;
  digests: Record<string, string>;
  details?: Record<string, string | number | boolean>;
}

/** One attempt at one round; unique on (jobId, round, attempt). */
export interface RoundDoc {
  jobId: string;
  round: number;
  attempt: number;
  status: 'completed' | 'failed';
  selected: string[];
  participants: string[];
  failures: RoundFailure[];
  metrics: Record<string, number>;
  modelHash?: string;
  transcriptHash?: string;
  failureReason?: string;
  /** RoundRecord.cohorts as objects (FerretDB rejects nested arrays). */
  cohorts?: Array<{ members: string[] }>;
  /** RoundRecord.contribution as stored (plain numbers and string lists). */
  contribution?: RoundContribution;
  /** RoundRecord.privacy as stored (plain numbers). */
  privacy?: RoundPrivacyRecord;
  /** The fencing token of the clustered node that wrote it (Store.saveRound's guard); never returned. */
  fence?: number;
  startedAt: Date;
  finishedAt: Date;
}

/**
 * One client of one job; unique on (jobId, clientId). `_id` is `participantKey(jobId, clientId)`
 * (documents written before it was an ObjectId, which the store still reads and updates): FerretDB's
 * SQLite backend runs a filter on `_id` alone as an indexed lookup and every other filter as a scan of
 * the whole collection, so a join keyed on `_id` costs the same with 10 participants or 100,000.
 */
export interface ParticipantDoc {
  _id?: string;
  jobId: string;
  clientId: string;
  joinedAt: Date;
  lastSeenAt: Date;
  roundsCompleted: number;
  payoutAddress?: string;
  /** The last round counted into roundsCompleted (Store.countRoundCompleted's guard); never returned. */
  countedRound?: number;
}

/** A participant's `_id`: unambiguous for any two strings (JSON of the pair). */
export function participantKey(jobId: string, clientId: string): string {
  return JSON.stringify([jobId, clientId]);
}

/** A chain job's payout plan (PayoutPlanRecord); unique on jobId, written once. */
export interface PayoutPlanDoc {
  jobId: string;
  root: string;
  totalWei: string;
  poolWei: string;
  dustWei: string;
  scoreLabel: string;
  allocations: Array<{ account: string; amountWei: string; proof: string[]; clientIds: string[]; score: number }>;
  createdAt: Date;
}

/** A chain job's worker state (ChainStateRecord); unique on jobId, fenced by the chain lease's token. */
export interface ChainStateDoc {
  jobId: string;
  status: unknown;
  done: boolean;
  fence?: number;
  updatedAt: Date;
}

/** A signed round or scoring transcript (TranscriptRecord); unique on (jobId, round, kind). */
export interface TranscriptDoc {
  jobId: string;
  round: number;
  kind: 'round' | 'scoring';
  hash: string;
  text: string;
  signature: string;
  signer: string;
  fence?: number;
  createdAt: Date;
}

/** Checkpoint metadata; the bytes live in the `checkpoints` GridFS bucket. Unique on (jobId, round). */
export interface CheckpointDoc {
  jobId: string;
  round: number;
  modelHash: string;
  weightsFileId: Types.ObjectId;
  strategyStateFileId?: Types.ObjectId;
  /** CheckpointRecord.fence: the writer's fencing token. */
  fence?: number;
  createdAt: Date;
}

/** Which GridFS file holds a job's validation set (bucket `validationSets`). Unique on jobId. */
export interface ValidationSetDoc {
  jobId: string;
  fileId: Types.ObjectId;
  updatedAt: Date;
}

/**
 * A dataset listing; `_id` is the listing id. The signed listing is kept whole (Mixed) so it comes
 * back byte-for-byte verifiable; the fields searches filter on are copied beside it, with the shape
 * and the feature-column set as canonical strings (shapeKeyOf, featureColumnsKeyOf) so a search is
 * plain equality, `$all` on tags and `$gte` on rows.
 */
export interface ListingDoc {
  _id: string;
  listing: Listing;
  signature: string;
  publishedAt: Date;
  provider: string;
  tags: string[];
  rows: number;
  numClasses: number;
  labelColumn: string;
  shapeKey: string;
  featureColumnsKey?: string;
}

/** GridFS bucket names. */
export const BUCKETS = { checkpoints: 'checkpoints', validationSets: 'validationSets' } as const;

const options = { minimize: false, versionKey: false } as const;

const jobSchema = new Schema<JobDoc>(
  {
    _id: { type: String, required: true },
    spec: { type: Schema.Types.Mixed, required: true },
    status: { type: String, required: true, enum: ['pending', 'running', 'completed', 'failed'] },
    currentRound: { type: Number, required: true },
    modelHash: { type: String, default: '' },
    weightManifest: {
      type: [new Schema<TensorManifestEntry>({ name: String, shape: [Number] }, { _id: false })],
      default: [],
    },
    failureReason: { type: String },
    owner: { type: String },
    visibility: { type: String, enum: ['public', 'private'] },
    delegates: { type: [String], default: undefined },
    privacy: { type: Schema.Types.Mixed, default: undefined },
    createdAt: { type: Date, required: true },
    updatedAt: { type: Date, required: true },
  },
  options,
);
jobSchema.index({ createdAt: -1 });
jobSchema.index({ status: 1, createdAt: -1 });
jobSchema.index({ owner: 1, status: 1 });
jobSchema.index({ visibility: 1, createdAt: -1 });

const apiKeySchema = new Schema<ApiKeyDoc>(
  {
    _id: { type: String, required: true },
    owner: { type: String, required: true },
    name: { type: String, required: true },
    scopes: { type: [String], default: [] },
    tokenHash: { type: String, required: true },
    createdAt: { type: Date, required: true },
    expiresAt: { type: Date, required: true },
    revokedAt: { type: Date },
  },
  options,
);
apiKeySchema.index({ owner: 1, createdAt: -1 });

const auditSchema = new Schema<AuditDoc>(
  {
    _id: { type: String, required: true },
    action: { type: String, required: true },
    actor: { type: String, required: true },
    at: { type: Date, required: true },
    jobId: { type: String },
    digests: { type: Schema.Types.Mixed, default: {} },
    details: { type: Schema.Types.Mixed, default: undefined },
  },
  options,
);
auditSchema.index({ jobId: 1, at: 1 });
auditSchema.index({ actor: 1, at: 1 });

const roundSchema = new Schema<RoundDoc>(
  {
    jobId: { type: String, required: true },
    round: { type: Number, required: true },
    attempt: { type: Number, required: true },
    status: { type: String, required: true, enum: ['completed', 'failed'] },
    selected: { type: [String], default: [] },
    participants: { type: [String], default: [] },
    failures: {
      type: [new Schema<RoundFailure>({ clientId: String, reason: String }, { _id: false })],
      default: [],
    },
    metrics: { type: Schema.Types.Mixed, default: {} },
    modelHash: { type: String },
    transcriptHash: { type: String },
    failureReason: { type: String },
    cohorts: {
      type: [new Schema<{ members: string[] }>({ members: { type: [String], default: [] } }, { _id: false })],
      default: undefined,
    },
    contribution: { type: Schema.Types.Mixed, default: undefined },
    privacy: { type: Schema.Types.Mixed, default: undefined },
    fence: { type: Number },
    startedAt: { type: Date, required: true },
    finishedAt: { type: Date, required: true },
  },
  options,
);
roundSchema.index({ jobId: 1, round: 1, attempt: 1 }, { unique: true });

const participantSchema = new Schema<ParticipantDoc>(
  {
    _id: { type: String },
    jobId: { type: String, required: true },
    clientId: { type: String, required: true },
    joinedAt: { type: Date, required: true },
    lastSeenAt: { type: Date, required: true },
    roundsCompleted: { type: Number, required: true },
    payoutAddress: { type: String },
    countedRound: { type: Number },
  },
  options,
);
participantSchema.index({ jobId: 1, clientId: 1 }, { unique: true });

const payoutPlanSchema = new Schema<PayoutPlanDoc>(
  {
    jobId: { type: String, required: true },
    root: { type: String, required: true },
    totalWei: { type: String, required: true },
    poolWei: { type: String, required: true },
    dustWei: { type: String, required: true },
    scoreLabel: { type: String, required: true },
    allocations: {
      type: [{ _id: false, account: String, amountWei: String, proof: [String], clientIds: [String], score: Number }],
      default: [],
    },
    createdAt: { type: Date, required: true },
  },
  options,
);
payoutPlanSchema.index({ jobId: 1 }, { unique: true });

const chainStateSchema = new Schema<ChainStateDoc>(
  {
    jobId: { type: String, required: true },
    // The worker's snapshot (ChainJobStatus), written and read whole: a REST view, never queried.
    status: { type: Schema.Types.Mixed, required: true },
    done: { type: Boolean, required: true },
    fence: { type: Number },
    updatedAt: { type: Date, required: true },
  },
  { ...options, minimize: false },
);
chainStateSchema.index({ jobId: 1 }, { unique: true });

const transcriptSchema = new Schema<TranscriptDoc>(
  {
    jobId: { type: String, required: true },
    round: { type: Number, required: true },
    kind: { type: String, required: true, enum: ['round', 'scoring'] },
    hash: { type: String, required: true },
    // The signed canonical text, verbatim: never parsed into fields, so it comes back byte for byte.
    text: { type: String, required: true },
    signature: { type: String, required: true },
    signer: { type: String, required: true },
    fence: { type: Number },
    createdAt: { type: Date, required: true },
  },
  options,
);
// Unique on (jobId, round, kind); 'round' sorts before 'scoring', the order listTranscripts returns.
transcriptSchema.index({ jobId: 1, round: 1, kind: 1 }, { unique: true });

const checkpointSchema = new Schema<CheckpointDoc>(
  {
    jobId: { type: String, required: true },
    round: { type: Number, required: true },
    modelHash: { type: String, required: true },
    weightsFileId: { type: Schema.Types.ObjectId, required: true },
    strategyStateFileId: { type: Schema.Types.ObjectId },
    fence: { type: Number },
    createdAt: { type: Date, required: true },
  },
  options,
);
// Unique on (jobId, round); also serves "highest round of a job" with a backward scan.
checkpointSchema.index({ jobId: 1, round: 1 }, { unique: true });

const validationSetSchema = new Schema<ValidationSetDoc>(
  {
    jobId: { type: String, required: true },
    fileId: { type: Schema.Types.ObjectId, required: true },
    updatedAt: { type: Date, required: true },
  },
  options,
);
validationSetSchema.index({ jobId: 1 }, { unique: true });

const listingSchema = new Schema<ListingDoc>(
  {
    _id: { type: String, required: true },
    listing: { type: Schema.Types.Mixed, required: true },
    signature: { type: String, required: true },
    publishedAt: { type: Date, required: true },
    provider: { type: String, required: true },
    tags: { type: [String], default: [] },
    rows: { type: Number, required: true },
    numClasses: { type: Number, required: true },
    labelColumn: { type: String, required: true },
    shapeKey: { type: String, required: true },
    featureColumnsKey: { type: String },
  },
  options,
);
listingSchema.index({ provider: 1, publishedAt: -1 });
listingSchema.index({ shapeKey: 1, numClasses: 1, publishedAt: -1 });

/**
 * One entry of a job's cluster log (Store.acquireJobLease, Store.appendRoundCommit): a lease takeover
 * (owner, url, expiresAt, renewed in place by its owner) or a round commit (the round document).
 * Unique on (jobId, seq): of two appends at the same sequence number exactly one is stored.
 */
export interface JobEventDoc {
  jobId: string;
  seq: number;
  kind: 'lease' | 'commit';
  token: number;
  owner?: string;
  url?: string;
  expiresAt?: Date;
  round?: RoundDoc;
}

const jobEventSchema = new Schema<JobEventDoc>(
  {
    jobId: { type: String, required: true },
    seq: { type: Number, required: true },
    kind: { type: String, required: true, enum: ['lease', 'commit'] },
    token: { type: Number, required: true },
    owner: { type: String },
    url: { type: String },
    expiresAt: { type: Date },
    round: { type: Schema.Types.Mixed, default: undefined },
  },
  options,
);
jobEventSchema.index({ jobId: 1, seq: 1 }, { unique: true });
jobEventSchema.index({ jobId: 1, kind: 1, seq: -1 });

/**
 * One generation of a claim slot (Store.claimSlot, slotClaims.ts). Unique on (kind, scope, slot,
 * generation): of two claimants inserting a slot's next generation exactly one is stored.
 */
export interface SlotDoc {
  kind: 'escrow' | 'jobs' | 'api-keys' | 'listings';
  scope: string;
  slot: number;
  generation: number;
  holder: string | null;
  claimedAt: Date;
}

const slotSchema = new Schema<SlotDoc>(
  {
    kind: { type: String, required: true, enum: ['escrow', 'jobs', 'api-keys', 'listings'] },
    scope: { type: String, required: true },
    slot: { type: Number, required: true },
    generation: { type: Number, required: true },
    holder: { type: String, default: null },
    claimedAt: { type: Date, required: true },
  },
  options,
);
slotSchema.index({ kind: 1, scope: 1, slot: 1, generation: 1 }, { unique: true });

/** The store's models, bound to one connection. */
export interface StoreModels {
  Job: Model<JobDoc>;
  Round: Model<RoundDoc>;
  Participant: Model<ParticipantDoc>;
  PayoutPlan: Model<PayoutPlanDoc>;
  ChainState: Model<ChainStateDoc>;
  Transcript: Model<TranscriptDoc>;
  Checkpoint: Model<CheckpointDoc>;
  ValidationSet: Model<ValidationSetDoc>;
  Listing: Model<ListingDoc>;
  ApiKey: Model<ApiKeyDoc>;
  Audit: Model<AuditDoc>;
  JobEvent: Model<JobEventDoc>;
  Slot: Model<SlotDoc>;
}

/** Registers the models on `conn` (not the global mongoose), with fixed collection names. */
export function defineModels(conn: Connection): StoreModels {
  return {
    Job: conn.model<JobDoc>('Job', jobSchema, 'jobs'),
    Round: conn.model<RoundDoc>('Round', roundSchema, 'rounds'),
    Participant: conn.model<ParticipantDoc>('Participant', participantSchema, 'participants'),
    PayoutPlan: conn.model<PayoutPlanDoc>('PayoutPlan', payoutPlanSchema, 'payoutplans'),
    ChainState: conn.model<ChainStateDoc>('ChainState', chainStateSchema, 'chainstates'),
    Transcript: conn.model<TranscriptDoc>('Transcript', transcriptSchema, 'transcripts'),
    Checkpoint: conn.model<CheckpointDoc>('Checkpoint', checkpointSchema, 'checkpoints'),
    ValidationSet: conn.model<ValidationSetDoc>('ValidationSet', validationSetSchema, 'validationsets'),
    Listing: conn.model<ListingDoc>('Listing', listingSchema, 'listings'),
    ApiKey: conn.model<ApiKeyDoc>('ApiKey', apiKeySchema, 'apikeys'),
    Audit: conn.model<AuditDoc>('Audit', auditSchema, 'audit'),
    JobEvent: conn.model<JobEventDoc>('JobEvent', jobEventSchema, 'jobevents'),
    Slot: conn.model<SlotDoc>('Slot', slotSchema, 'claimslots'),
  };
}
