import type { z } from 'zod';
import { JobListSchema } from '../../shared/schemas/restApi';
import type { BuyerClient } from './client';
import type { TributaryApiError } from './errors';

export type ListJobsParameters = {
  status?: 'pending' | 'running' | 'completed' | 'failed';
  /** Only jobs this client owns or is a delegate of. @default false */
  mine?: boolean;
  /** @default 20 (at most 100, 20 with view "full") */
  limit?: number;
  /** The nextCursor of the previous page. */
  cursor?: string;
  /** @default "summary" */
  view?: 'summary' | 'full';
};
export type ListJobsReturnType = z.infer<typeof JobListSchema>;
export type ListJobsErrorType = TributaryApiError<'VALIDATION_FAILED' | 'AUTH_REQUIRED' | 'RATE_LIMITED'>;

/**
 * One page of jobs, newest first (GET /v1/jobs): public jobs and the caller's own private ones.
 * @example
 * for (let cursor: string | undefined; ; ) {
 *   const page = await listJobs(client, { mine: true, cursor });
 *   page.jobs.forEach((j) => console.log(j.id, j.status));
 *   if (!page.nextCursor) break;
 *   cursor = page.nextCursor;
 * }
 */
export async function listJobs(client: BuyerClient, parameters: ListJobsParameters = {}): Promise<ListJobsReturnType> {
  return client.request({
    method: 'GET',
    path: '/v1/jobs',
    query: { ...parameters, mine: parameters.mine ? 'true' : undefined },
    response: { schema: JobListSchema },
  });
}
