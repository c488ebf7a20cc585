import { roleHoldersOf } from '../../shared/schemas/aggregationSpec';
import { TributaryError } from '../../shared/errors';
import { isManagedBy, visibilityOf } from '../store/records';
import type { JobRecord, Store } from '../store/store';
import { type Principal, requirePrincipal, requireScope } from './principal';

/*
 * Who may do what to a job over REST (the rules of docs/rest-api.md "Ownership and visibility"):
 * - manage (validation set, cancel, invitations, delegates' private reads): the owner or a delegate;
 * - read the model, checkpoints, rounds and participants: anyone for a `public` job; for a `private`
 *   one the managers and the job's members (participants, by their Ed25519 key or their payout
 *   address, and a paillier job's key holder).
 * Every check runs before the route touches anything, so a refused request changes nothing.
 * Anonymous callers get 401 AUTH_REQUIRED, identified ones without the right 403 AUTH_FORBIDDEN.
 */

/** AUTH_REQUIRED / AUTH_FORBIDDEN unless the principal owns the job or is a delegate (with `scope` for API keys). */
export function assertManager(
  job: JobRecord,
  principal: Principal | null | undefined,
  scope: 'jobs:read' | 'jobs:write',
  what: string,
): Principal {
  const p = requirePrincipal(principal, what);
  if (!isManagedBy(job, p.id)) {
    throw new TributaryError('AUTH_FORBIDDEN', `${what} is for the owner of job ${job.id} (or its delegates).`);
  }
  requireScope(p, scope);
  return p;
}

/** AUTH_REQUIRED / AUTH_FORBIDDEN unless the principal is the job's owner itself (with `scope` for API keys). */
export function assertOwner(
  job: JobRecord,
  principal: Principal | null | undefined,
  what: string,
  scope: 'jobs:read' | 'jobs:write',
): Principal {
  const p = requirePrincipal(principal, what);
  if (job.owner === undefined || job.owner !== p.id) {
    throw new TributaryError('AUTH_FORBIDDEN', `${what} is for the owner of job ${job.id} only.`);
  }
  requireScope(p, scope);
  return p;
}

/** Whether the principal takes part in the job: a participant (key or payout address) or its key holder. */
export async function isMember(job: JobRecord, principal: Principal, store: Store): Promise<boolean> {
  if (principal.clientId !== undefined && roleHoldersOf(job.spec).includes(principal.clientId)) return true;
  const participants = await store.listParticipants(job.id);
  return participants.some(
    (p) =>
      (principal.clientId !== undefined && p.clientId === principal.clientId) ||
      (principal.address !== undefined && p.payoutAddress?.toLowerCase() === principal.address),
  );
}

/** Whether the principal may read the job's private data (model, rounds, participants of a private job). */
export async function mayRead(job: JobRecord, principal: Principal | null | undefined, store: Store): Promise<boolean> {
  if (visibilityOf(job) === 'public') return true;
  if (!principal) return false;
  if (isManagedBy(job, principal.id)) return principal.scopes === 'all' || principal.scopes.includes('jobs:read');
  return isMember(job, principal, store);
}

/** AUTH_REQUIRED / AUTH_FORBIDDEN unless the principal may read the job's private data. */
export async function assertReader(
  job: JobRecord,
  principal: Principal | null | undefined,
  store: Store,
  what: string,
): Promise<void> {
  if (visibilityOf(job) === 'public') return;
  const p = requirePrincipal(principal, `${what} of private job ${job.id}`);
  if (!(await mayRead(job, p, store))) {
    throw new TributaryError(
      'AUTH_FORBIDDEN',
      `Job ${job.id} is private: ${what} is for its owner, delegates and participants.`,
    );
  }
}
