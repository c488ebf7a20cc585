import type { z } from 'zod';
import { JobViewSchema } from '../../shared/schemas/restApi';
import type { BuyerClient } from './client';
import type { TributaryApiError } from './errors';

export type GetJobParameters = { jobId: string };
export type GetJobReturnType = z.infer<typeof JobViewSchema>;
export type GetJobErrorType = TributaryApiError<'JOB_NOT_FOUND' | 'AUTH_REQUIRED' | 'AUTH_FORBIDDEN' | 'RATE_LIMITED'>;

/**
 * One job (GET /v1/jobs/:id): status, current round, model hash, spec. A private job answers only its
 * owner, delegates and participants.
 * @example
 * const { status, currentRound } = await getJob(client, { jobId });
 */
export async function getJob(client: BuyerClient, { jobId }: GetJobParameters): Promise<GetJobReturnType> {
  return client.request({
    method: 'GET',
    path: `/v1/jobs/${encodeURIComponent(jobId)}`,
    response: { schema: JobViewSchema },
  });
}
