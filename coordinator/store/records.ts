import type { JobPatch, JobRecord } from './store';

/*
 * Small rules both store backends must apply the same way, kept here so they cannot drift.
 */

/** listJobs order: newest createdAt first; ties by id ascending, so the order is total and stable. */
export function compareJobsNewestFirst(a: JobRecord, b: JobRecord): number {
  const byTime = b.createdAt.getTime() - a.createdAt.getTime();
  if (byTime !== 0) return byTime;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/** A plain Uint8Array (never a Buffer) holding a copy of exactly the bytes `bytes` views. */
export function copyBytes(bytes: Uint8Array): Uint8Array {
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  return copy;
}

const PATCHABLE = ['status', 'currentRound', 'modelHash', 'failureReason', 'privacy'] as const;

/** The fields of `patch` that updateJob applies: only patchable keys, and only those not undefined. */
export function definedPatch(patch: JobPatch): JobPatch {
  const out: Record<string, unknown> = {};
  for (const key of PATCHABLE) {
    if (patch[key] !== undefined) out[key] = patch[key];
  }
  return out as JobPatch;
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
