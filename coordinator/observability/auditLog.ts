import { createHash, randomBytes } from 'node:crypto';
import type { Principal } from '../auth/principal';
import type { AuditRecord, Store } from '../store/store';

/** The actions the audit trail records (`job.settlement.posted`: the chain worker, through server.ts). */
export type AuditAction =
  | 'job.created'
  | 'job.cancelled'
  | 'job.validation-set.replaced'
  | 'job.access.changed'
  | 'job.delegates.changed'
  | 'job.settlement.posted'
  | 'api-key.created'
  | 'api-key.revoked';

/** SHA-256 (hex) of bytes or a UTF-8 string. */
export function sha256Hex(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** JSON with object keys sorted at every level: equal values, equal text (for digests of specs and settings). */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

/**
 * The audit trail: one store record per state-changing action, with who acted, when, and SHA-256
 * digests of what was written or replaced (never the data). Job owners read theirs at
 * GET /v1/jobs/:id/audit. Writes happen after the action succeeded, so a refused request leaves no
 * entry; an entry that fails to write is logged by the caller and does not undo the action.
 */
export class AuditLog {
  constructor(
    private readonly store: Store,
    private readonly now: () => number = Date.now,
  ) {}

  /** Records an action by `actor` (a principal, or `operator` for in-process callers). */
  async record(entry: {
    action: AuditAction;
    actor: Principal | string;
    jobId?: string;
    digests?: Record<string, string>;
    details?: Record<string, string | number | boolean>;
  }): Promise<AuditRecord> {
    const actor = typeof entry.actor === 'string' ? entry.actor : entry.actor.id;
    const details = { ...entry.details };
    if (typeof entry.actor !== 'string' && entry.actor.apiKeyId) details.apiKey = entry.actor.apiKeyId;
    const record: AuditRecord = {
      id: `aud_${randomBytes(12).toString('base64url')}`,
      action: entry.action,
      actor,
      at: new Date(this.now()),
      digests: entry.digests ?? {},
      ...(entry.jobId !== undefined ? { jobId: entry.jobId } : {}),
      ...(Object.keys(details).length > 0 ? { details } : {}),
    };
    await this.store.appendAudit(record);
    return record;
  }
}
