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

/**
 * Paid jobs are private by default, and a private job serves its model only to signed requests;
 * TributaryClient still downloads the model with a plain fetch until the lead wires createSignedFetch
 * into client/tributaryClient.ts (and keyHolder.ts's status poll). Until then the tests that run real
 * providers on paid jobs make those jobs public explicitly.
 * MERGE: delete this and its uses once the provider client signs its downloads.
 */
export const UNTIL_CLIENT_SIGNS = { visibility: 'public' } as const;
