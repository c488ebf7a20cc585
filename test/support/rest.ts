import { type BuyerClient, createBuyerClient, createJob as createJobAction } from '../../client/buyer';
import { generateIdentity, type Identity } from '../../shared/identity/keyPair';
import type { JobSpecInput } from '../../shared/schemas/jobSpec';

/** The buyer the e2e tests create jobs as (one Ed25519 key per test process). */
export const testBuyer: Identity = generateIdentity();

/** A buyer SDK client for `url`, signing as `identity` (the test buyer by default). */
export function buyerClient(url: string, identity: Identity = testBuyer): BuyerClient {
  return createBuyerClient({ url, identity });
}

/** Creates a job through the buyer SDK, signed by the test buyer (its owner); throws the coded error if refused. */
export async function createJob(url: string, spec: JobSpecInput, identity: Identity = testBuyer): Promise<string> {
  return (await createJobAction(buyerClient(url, identity), { spec })).id;
}
