/**
 * `tributary/buyer`: the buyer's SDK. Create a client, then call actions with it (one action per
 * file, viem style: each exports its XParameters, XReturnType and XErrorType).
 *
 * @example
 * import { createBuyerClient, createJob, uploadValidationSet, waitForJob, downloadModel } from 'tributary/buyer';
 * const client = createBuyerClient({ url, identity });
 * const job = await createJob(client, { spec });
 * await uploadValidationSet(client, { jobId: job.id, data: csv });
 * await waitForJob(client, { jobId: job.id });
 * const { tensors } = await downloadModel(client, { jobId: job.id });
 */
export * from './apiKeys';
export * from './cancelJob';
export * from './client';
export * from './createJob';
export * from './downloadModel';
export * from './errors';
export * from './fund';
export * from './getContributions';
export * from './getJob';
export * from './getPayouts';
export * from './jobSettings';
export * from './listJobs';
export * from './searchListings';
export * from './signInWithEthereum';
export * from './uploadValidationSet';
export * from './waitForJob';
export { createSignedFetch, type SignedFetch } from '../signedFetch';
