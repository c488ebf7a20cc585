import type { z } from 'zod';
import type { JobAccess } from '../../shared/schemas/jobAccess';
import { AuditListSchema, JobViewSchema, RoundListSchema } from '../../shared/schemas/restApi';
import type { BuyerClient } from './client';
import type { TributaryApiError } from './errors';

export type SetJobAccessParameters = { jobId: string; access: JobAccess };
export type SetJobAccessReturnType = z.infer<typeof JobViewSchema>;
export type SetJobAccessErrorType = TributaryApiError<
  'AUTH_REQUIRED' | 'AUTH_FORBIDDEN' | 'JOB_SPEC_INVALID' | 'JOB_NOT_RUNNING' | 'JOB_NOT_FOUND'
>;

/**
 * Changes who may join the job as a provider, e.g. the invited listings (PUT /v1/jobs/:id/access; owner or delegate).
 * @example
 * await setJobAccess(client, { jobId, access: { mode: 'invite', listings: [listingId] } });
 */
export async function setJobAccess(
  client: BuyerClient,
  { jobId, access }: SetJobAccessParameters,
): Promise<SetJobAccessReturnType> {
  return client.request({
    method: 'PUT',
    path: `/v1/jobs/${encodeURIComponent(jobId)}/access`,
    json: { access },
    response: { schema: JobViewSchema },
  });
}

export type SetDelegatesParameters = { jobId: string; delegates: string[] };
export type SetDelegatesReturnType = z.infer<typeof JobViewSchema>;
export type SetDelegatesErrorType = TributaryApiError<
  'AUTH_REQUIRED' | 'AUTH_FORBIDDEN' | 'VALIDATION_FAILED' | 'JOB_NOT_FOUND'
>;

/**
 * Sets the identities that may manage the job besides its owner (PUT /v1/jobs/:id/delegates; owner only).
 * @example
 * await setDelegates(client, { jobId, delegates: [`ed25519:${colleague.clientId}`, 'eth:0xabc...'] });
 */
export async function setDelegates(
  client: BuyerClient,
  { jobId, delegates }: SetDelegatesParameters,
): Promise<SetDelegatesReturnType> {
  return client.request({
    method: 'PUT',
    path: `/v1/jobs/${encodeURIComponent(jobId)}/delegates`,
    json: { delegates },
    response: { schema: JobViewSchema },
  });
}

export type GetAuditParameters = { jobId: string; limit?: number; cursor?: string };
export type GetAuditReturnType = z.infer<typeof AuditListSchema>;
export type GetAuditErrorType = TributaryApiError<'AUTH_REQUIRED' | 'AUTH_FORBIDDEN' | 'JOB_NOT_FOUND'>;

/**
 * The job's audit trail, oldest first: who created it, replaced its validation set, changed its
 * invitations or cancelled it, when, with digests (GET /v1/jobs/:id/audit; owner only).
 * @example
 * const { entries } = await getAudit(client, { jobId });
 */
export async function getAudit(
  client: BuyerClient,
  { jobId, ...page }: GetAuditParameters,
): Promise<GetAuditReturnType> {
  return client.request({
    method: 'GET',
    path: `/v1/jobs/${encodeURIComponent(jobId)}/audit`,
    query: { ...page, view: 'full' },
    response: { schema: AuditListSchema },
  });
}

export type GetRoundsParameters = { jobId: string; limit?: number; cursor?: string; view?: 'summary' | 'full' };
export type GetRoundsReturnType = z.infer<typeof RoundListSchema>;
export type GetRoundsErrorType = TributaryApiError<'AUTH_REQUIRED' | 'AUTH_FORBIDDEN' | 'JOB_NOT_FOUND'>;

/**
 * One page of the job's round attempts, in order (GET /v1/jobs/:id/rounds).
 * @example
 * const { rounds } = await getRounds(client, { jobId, limit: 20 });
 */
export async function getRounds(
  client: BuyerClient,
  { jobId, ...page }: GetRoundsParameters,
): Promise<GetRoundsReturnType> {
  return client.request({
    method: 'GET',
    path: `/v1/jobs/${encodeURIComponent(jobId)}/rounds`,
    query: page,
    response: { schema: RoundListSchema },
  });
}
