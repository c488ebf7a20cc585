import type { BuyerClient } from './client';
import type { TributaryApiError } from './errors';
import { getJob, type GetJobReturnType } from './getJob';

export type WaitForJobParameters = {
  jobId: string;
  /** How often to poll, ms. @default 1000 */
  pollMs?: number;
  /** Give up after this long, ms. @default no limit */
  timeoutMs?: number;
  /** Called with the job whenever its round or status changes. */
  onProgress?: (job: GetJobReturnType) => void;
  signal?: AbortSignal;
};
export type WaitForJobReturnType = GetJobReturnType;
export type WaitForJobErrorType = TributaryApiError<'JOB_NOT_FOUND' | 'AUTH_REQUIRED' | 'AUTH_FORBIDDEN'> | Error;

/**
 * Polls the job until it is `completed` or `failed`, and returns it (check `status` and `failureReason`).
 * Rate-limited polls wait the Retry-After the coordinator asks for.
 * @example
 * const done = await waitForJob(client, { jobId, onProgress: (j) => console.log(`round ${j.currentRound}`) });
 * if (done.status === 'failed') throw new Error(done.failureReason);
 */
export async function waitForJob(client: BuyerClient, parameters: WaitForJobParameters): Promise<WaitForJobReturnType> {
  const deadline = parameters.timeoutMs !== undefined ? Date.now() + parameters.timeoutMs : Number.POSITIVE_INFINITY;
  let seen = '';
  for (;;) {
    parameters.signal?.throwIfAborted();
    let wait = parameters.pollMs ?? 1000;
    try {
      const job = await getJob(client, { jobId: parameters.jobId });
      const key = `${job.status}:${job.currentRound}`;
      if (key !== seen) parameters.onProgress?.(job);
      seen = key;
      if (job.status === 'completed' || job.status === 'failed') return job;
    } catch (err) {
      const e = err as TributaryApiError;
      if (e.code !== 'RATE_LIMITED') throw err;
      wait = Math.max(wait, ((e.details as { retryAfterSeconds?: number })?.retryAfterSeconds ?? 1) * 1000);
    }
    if (Date.now() + wait > deadline)
      throw new Error(`Job ${parameters.jobId} did not finish within ${parameters.timeoutMs} ms.`);
    await new Promise((resolve) => setTimeout(resolve, wait));
  }
}
