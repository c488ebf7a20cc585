import type { z } from 'zod';
import type { JobSpecInput } from '../../shared/schemas/jobSpec';
import { JobViewSchema } from '../../shared/schemas/restApi';
import type { BuyerClient } from './client';
import type { TributaryApiError } from './errors';

export type CreateJobParameters = {
  /** The job spec (shared/schemas/jobSpec.ts); defaults are filled in by the coordinator. */
  spec: JobSpecInput;
};
export type CreateJobReturnType = z.infer<typeof JobViewSchema>;
export type CreateJobErrorType = TributaryApiError<
  | 'AUTH_REQUIRED'
  | 'AUTH_FORBIDDEN'
  | 'JOB_SPEC_INVALID'
  | 'MODEL_TOO_LARGE'
  | 'QUOTA_EXCEEDED'
  | 'RATE_LIMITED'
  | 'PAYLOAD_TOO_LARGE'
  | 'CHAIN_UNAVAILABLE'
  | 'VALIDATION_FAILED'
>;

/**
 * Creates a job (POST /v1/jobs), signed, so the client's identity owns it: only it (and its delegates)
 * can upload the validation set, cancel, change invitations and read private results.
 * @example
 * const job = await createJob(client, { spec: {
 *   name: 'weather', model: { kind: 'builtin', name: 'mlp' }, input: { shape: [8], numClasses: 2 }, rounds: 5 } });
 * console.log(job.id, job.status, job.visibility);
 */
export async function createJob(client: BuyerClient, { spec }: CreateJobParameters): Promise<CreateJobReturnType> {
  // ESCROW BINDING (issue 11 item 1; coordinator/chain and contracts/ own it): a spec with a `chain`
  // config must carry the escrow buyer's EIP-712 signature. When `signEscrowBinding` lands, this is
  // the place that signs it with the buyer's wallet and attaches it to the request:
  //   const binding = await signEscrowBinding({ wallet, chain: spec.chain, coordinator, specHash });
  return client.request({ method: 'POST', path: '/v1/jobs', json: spec, response: { schema: JobViewSchema } });
}
