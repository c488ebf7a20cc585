import type { z } from 'zod';
import { PayoutListSchema, PayoutSchema } from '../../shared/schemas/restApi';
import type { BuyerClient } from './client';
import type { TributaryApiError } from './errors';

export type GetPayoutsParameters = { jobId: string };
export type GetPayoutsReturnType = z.infer<typeof PayoutListSchema>['payouts'];
export type GetPayoutsErrorType = TributaryApiError<
  'AUTH_REQUIRED' | 'AUTH_FORBIDDEN' | 'PAYOUT_NOT_READY' | 'PAYOUT_NOT_FOUND' | 'JOB_NOT_FOUND'
>;

/**
 * Every payout of a settled paid job (GET /v1/jobs/:id/payouts; owner or delegate).
 * @example
 * const payouts = await getPayouts(client, { jobId });
 * const total = payouts.reduce((s, p) => s + BigInt(p.amountWei), 0n);
 */
export async function getPayouts(client: BuyerClient, { jobId }: GetPayoutsParameters): Promise<GetPayoutsReturnType> {
  const answer = await client.request({
    method: 'GET',
    path: `/v1/jobs/${encodeURIComponent(jobId)}/payouts`,
    response: { schema: PayoutListSchema },
  });
  return answer.payouts;
}

export type GetPayoutParameters = { jobId: string; address: string };
export type GetPayoutReturnType = z.infer<typeof PayoutSchema>;
export type GetPayoutErrorType = GetPayoutsErrorType;

/**
 * One address's payout and Merkle proof (GET /v1/jobs/:id/payouts/:address): for that address's holder
 * (signed in with it), the participant it belongs to, or the job's managers.
 * @example
 * const { amountWei, proof } = await getPayout(client, { jobId, address: wallet.address });
 */
export async function getPayout(
  client: BuyerClient,
  { jobId, address }: GetPayoutParameters,
): Promise<GetPayoutReturnType> {
  return client.request({
    method: 'GET',
    path: `/v1/jobs/${encodeURIComponent(jobId)}/payouts/${encodeURIComponent(address)}`,
    response: { schema: PayoutSchema },
  });
}
