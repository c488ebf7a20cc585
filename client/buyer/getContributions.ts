import type { z } from 'zod';
import { ClientContributionSchema, ContributionReportSchema } from '../../shared/schemas/restApi';
import type { BuyerClient } from './client';
import type { TributaryApiError } from './errors';

export type GetContributionsParameters = { jobId: string };
export type GetContributionsReturnType = z.infer<typeof ContributionReportSchema>;
export type GetContributionsErrorType = TributaryApiError<'AUTH_REQUIRED' | 'AUTH_FORBIDDEN' | 'JOB_NOT_FOUND'>;

/**
 * Every client's contribution score and payout share (GET /v1/jobs/:id/contributions; owner or delegate).
 * @example
 * const report = await getContributions(client, { jobId });
 * for (const c of report.clients) console.log(c.clientId, c.score, c.share);
 */
export async function getContributions(
  client: BuyerClient,
  { jobId }: GetContributionsParameters,
): Promise<GetContributionsReturnType> {
  return client.request({
    method: 'GET',
    path: `/v1/jobs/${encodeURIComponent(jobId)}/contributions`,
    response: { schema: ContributionReportSchema },
  });
}

export type GetClientContributionParameters = { jobId: string; clientId: string };
export type GetClientContributionReturnType = z.infer<typeof ClientContributionSchema>;
export type GetClientContributionErrorType = TributaryApiError<
  'AUTH_REQUIRED' | 'AUTH_FORBIDDEN' | 'JOB_NOT_FOUND' | 'CONTRIBUTION_CLIENT_UNKNOWN'
>;

/**
 * One client's score, share and per-round values (GET /v1/jobs/:id/contributions/:clientId): a provider
 * reads its own (sign as that client), the owner reads anyone's.
 * @example
 * const mine = await getClientContribution(providerClient, { jobId, clientId: identity.clientId });
 */
export async function getClientContribution(
  client: BuyerClient,
  { jobId, clientId }: GetClientContributionParameters,
): Promise<GetClientContributionReturnType> {
  return client.request({
    method: 'GET',
    path: `/v1/jobs/${encodeURIComponent(jobId)}/contributions/${encodeURIComponent(clientId)}`,
    response: { schema: ClientContributionSchema },
  });
}
