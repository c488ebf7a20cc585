import { TributaryError } from '../../shared/errors';
import type {
  AuditCursor,
  AuditRecord,
  JobCursor,
  JobPatch,
  JobRecord,
  JobVisibility,
  ListingRecord,
  TranscriptRecord,
} from './store';

/*
 * Small rules both store backends must apply the same way, kept here so they cannot drift.
 */

/** listJobs order: newest createdAt first; ties by id ascending, so the order is total and stable. */
export function compareJobsNewestFirst(a: JobRecord, b: JobRecord): number {
  const byTime = b.createdAt.getTime() - a.createdAt.getTime();
  if (byTime !== 0) return byTime;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/** listTranscripts order: by round, then `round` before `scoring`. */
export function compareTranscripts(a: TranscriptRecord, b: TranscriptRecord): number {
  return a.round - b.round || (a.kind === b.kind ? 0 : a.kind === 'round' ? -1 : 1);
}

/** A plain Uint8Array (never a Buffer) holding a copy of exactly the bytes `bytes` views. */
export function copyBytes(bytes: Uint8Array): Uint8Array {
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  return copy;
}

const PATCHABLE = ['status', 'currentRound', 'modelHash', 'failureReason', 'delegates', 'access', 'privacy'] as const;

/** The fields of `patch` that updateJob applies: only patchable keys, and only those not undefined. */
export function definedPatch(patch: JobPatch): JobPatch {
  const out: Record<string, unknown> = {};
  for (const key of PATCHABLE) {
    if (patch[key] !== undefined) out[key] = patch[key];
  }
  return out as JobPatch;
}

/** A job with `patch` applied (a new object; `access` replaces spec.access) and updatedAt set to now. */
export function applyJobPatch(job: JobRecord, patch: JobPatch): JobRecord {
  const { access, ...fields } = definedPatch(patch);
  return {
    ...job,
    ...fields,
    ...(access !== undefined ? { spec: { ...job.spec, access } } : {}),
    updatedAt: new Date(),
  };
}

/** A job's visibility: as stored, else `private` for a paid (chain) job and `public` otherwise. */
export function visibilityOf(job: Pick<JobRecord, 'visibility' | 'spec'>): JobVisibility {
  return job.visibility ?? (job.spec.chain ? 'private' : 'public');
}

/** Whether `principal` owns the job or is one of its delegates. */
export function isManagedBy(job: Pick<JobRecord, 'owner' | 'delegates'>, principal: string): boolean {
  return job.owner === principal || (job.delegates ?? []).includes(principal);
}

/** The listJobsPage visibility rule: public jobs, plus those `principal` manages (null: public only). */
export function isVisibleTo(job: JobRecord, principal: string | null): boolean {
  return visibilityOf(job) === 'public' || (principal !== null && isManagedBy(job, principal));
}

/** Whether a job comes after `cursor` in listJobs order (newest first, ties by id ascending). */
export function afterJobCursor(job: JobRecord, cursor: JobCursor): boolean {
  const t = job.createdAt.getTime();
  const c = cursor.createdAt.getTime();
  return t < c || (t === c && job.id > cursor.id);
}

/** Whether a listing comes after `cursor` in search order (newest publishedAt first, ties by id ascending). */
export function afterListingCursor(record: ListingRecord, cursor: { publishedAt: Date; id: string }): boolean {
  const t = record.publishedAt.getTime();
  const c = cursor.publishedAt.getTime();
  return t < c || (t === c && record.id > cursor.id);
}

/** Audit order: oldest first; ties by id ascending. */
export function compareAuditOldestFirst(a: AuditRecord, b: AuditRecord): number {
  return a.at.getTime() - b.at.getTime() || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

/** Whether an audit record comes after `cursor` in audit order. */
export function afterAuditCursor(record: AuditRecord, cursor: AuditCursor): boolean {
  const t = record.at.getTime();
  const c = cursor.at.getTime();
  return t > c || (t === c && record.id > cursor.id);
}

/**
 * A deep copy of record data: plain objects (undefined-valued keys dropped), arrays, Dates, and
 * Uint8Arrays (as plain Uint8Arrays).
 * Not structuredClone: that builds Dates and arrays in Node's own realm, which under jest's VM sandbox
 * are not `instanceof Date`; and it copies a typed array's whole backing buffer rather than the view.
 */
export function deepCopy<T>(value: T): T {
  return copyValue(value) as T;
}

function copyValue(value: unknown): unknown {
  if (value === null || typeof value !== 'object') return value;
  // Tags rather than instanceof, so values made in another realm are still recognised.
  const tag = Object.prototype.toString.call(value);
  if (tag === '[object Date]') return new Date((value as Date).getTime());
  if (tag === '[object Uint8Array]') return copyBytes(value as Uint8Array);
  if (Array.isArray(value)) return value.map(copyValue);
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) {
    // Dropped like JSON and MongoStore drop them, so both backends return the same keys.
    if (v !== undefined) out[key] = copyValue(v);
  }
  return out;
}

/** Whether a write fenced with `fence` may replace a stored record fenced with `stored` (unfenced writes always may). */
export function fenceAllows(stored: number | undefined, fence: number | undefined): boolean {
  return fence === undefined || stored === undefined || stored <= fence;
}

/** A fenced write refused: the job's lease (or the record) carries a newer fencing token. */
export function leaseLost(jobId: string, fence: number | undefined): TributaryError {
  return new TributaryError(
    'LEASE_LOST',
    `Job ${jobId}: fencing token ${String(fence)} is older than the job's lease; another node runs it now.`,
  );
}
