import type { z } from 'zod';
import { JobViewSchema } from '../../shared/schemas/restApi';
import type { BuyerClient } from './client';
import type { TributaryApiError } from './errors';

export type CancelJobParameters = { jobId: string; reason?: string };
export type CancelJobReturnType = z.infer<typeof JobViewSchema>;
export type CancelJobErrorType = TributaryApiError<
  'AUTH_REQUIRED' | 'AUTH_FORBIDDEN' | 'JOB_NOT_FOUND' | 'JOB_NOT_RUNNING' | 'RATE_LIMITED'
>;

/**
 * Cancels a pending or running job (POST /v1/jobs/:id/cancel; owner or delegate): its rounds stop and
 * it ends `failed` with the reason.
 * @example
 * await cancelJob(client, { jobId, reason: 'wrong validation set' });
 */
export async function cancelJob(
  client: BuyerClient,
  { jobId, reason }: CancelJobParameters,
): Promise<CancelJobReturnType> {
  return client.request({
    method: 'POST',
    path: `/v1/jobs/${encodeURIComponent(jobId)}/cancel`,
    json: reason !== undefined ? { reason } : {},
    response: { schema: JobViewSchema },
  });
}
