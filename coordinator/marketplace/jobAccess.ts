import { TributaryError } from '../../shared/errors';
import { listingMatches, queryForInput } from '../../shared/schemas/listing';
import type { JobSpec } from '../../shared/schemas/jobSpec';
import type { Store } from '../store/store';

/*
 * Job access control (JobSpec.access): which clients may join a job as data providers. Checked when
 * a job is created (invited listings must exist and fit the job) and at every job:join, before the
 * client becomes a member, so a refused client changes nothing. A paillier job's key holder joins
 * with keyholder:join and is not subject to it.
 */

/** Throws JOB_SPEC_INVALID unless every invited listing exists and its schema matches the job's input spec. */
export async function assertInvitedListingsFit(spec: JobSpec, store: Store): Promise<void> {
  if (spec.access?.mode !== 'invite') return;
  const query = queryForInput(spec.input);
  // One read for all invited listings (at most MAX_INVITED_LISTINGS), not one per id.
  const { listings: ids } = spec.access;
  const found = new Map((await store.searchListings({ ids, limit: ids.length })).map((r) => [r.id, r]));
  const missing: string[] = [];
  const mismatched: string[] = [];
  for (const id of ids) {
    const record = found.get(id);
    if (!record) missing.push(id);
    else if (!listingMatches(record.listing, query)) mismatched.push(id);
  }
  if (missing.length > 0) {
    throw new TributaryError(
      'JOB_SPEC_INVALID',
      `Invalid job spec: access.listings: no listing ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ` (and ${missing.length - 5} more)` : ''}.`,
      {
        details: { missing },
      },
    );
  }
  if (mismatched.length > 0) {
    throw new TributaryError(
      'JOB_SPEC_INVALID',
      `Invalid job spec: access.listings: the schema of ${mismatched.slice(0, 5).join(', ')} does not match the job's input spec (shape, numClasses, labelColumn, featureColumns).`,
      {
        details: { mismatched },
      },
    );
  }
}

/** Throws JOB_ACCESS_DENIED unless the job's access policy admits `clientId` as a provider. */
export async function assertMayJoin(jobId: string, spec: JobSpec, clientId: string, store: Store): Promise<void> {
  const access = spec.access ?? { mode: 'public' as const };
  if (access.mode === 'public') return;
  if (access.mode === 'open') {
    const matching = await store.searchListings({ ...queryForInput(spec.input), provider: clientId, limit: 1 });
    if (matching.length > 0) return;
    throw new TributaryError(
      'JOB_ACCESS_DENIED',
      `Job ${jobId} is open to providers with a listing matching its input spec; this client has none. Publish one (tributary client publish-listing) and join again.`,
    );
  }
  // Invited listings that still exist and belong to this client; a deleted listing withdraws its invitation.
  if ((await store.searchListings({ ids: access.listings, provider: clientId, limit: 1 })).length > 0) return;
  throw new TributaryError(
    'JOB_ACCESS_DENIED',
    `Job ${jobId} is invite-only and none of its invited listings belongs to this client.`,
  );
}
