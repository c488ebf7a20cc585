/**
 * Per-identity quotas against concurrency, over real HTTP on loopback: one identity fires a burst of
 * well-formed, separately signed requests at once (job specs, listings, API keys), each of which would
 * pass the quota alone. A quota counted and then written with an await in between lets the whole
 * burst through; the coordinator must hold each quota exactly, refusing the rest with 429
 * QUOTA_EXCEEDED, and store nothing for them.
 */
import { createApiKey } from '../client/buyer';
import { publishListing } from '../client/listings';
import { startCoordinator, type Coordinator } from '../coordinator/server';
import { generateIdentity } from '../shared/identity/keyPair';
import { mongoSourceForTests, mongoUriForTests, type TestMongo } from './support/ferretdb';
import { buyerClient, createJob } from './support/rest';

jest.setTimeout(120_000);

const BURST = 8;
const QUOTA = 2;

const codeOf = (err: unknown) => (err as { code?: string }).code ?? String(err);

const stores: Array<['memory' | 'mongodb', boolean]> = [
  ['memory', true],
  ['mongodb', mongoSourceForTests() !== null],
];

describe.each(stores)('per-identity quotas under a burst of concurrent requests (%s store)', (storeName, available) => {
  const it = available ? global.it : global.it.skip;
  let c: Coordinator | undefined;
  let mongo: TestMongo | null = null;

  beforeAll(async () => {
    if (!available) return;
    if (storeName === 'mongodb') mongo = await mongoUriForTests();
    c = await startCoordinator({
      port: 0,
      logLevel: 'error',
      maxActiveJobsPerIdentity: QUOTA,
      maxListingsPerProvider: QUOTA,
      maxApiKeysPerIdentity: QUOTA,
      ...(mongo ? { mongodbUri: mongo.uri, dbName: mongo.dbName } : {}),
    });
  });
  afterAll(async () => {
    await c?.close();
    await mongo?.stop();
  });

  /** Runs `BURST` copies of a request at once: how many succeeded, and the codes of the rest. */
  async function burst(request: (i: number) => Promise<unknown>) {
    const outcomes = await Promise.allSettled(Array.from({ length: BURST }, (_, i) => request(i)));
    return {
      ok: outcomes.filter((o) => o.status === 'fulfilled').length,
      codes: [...new Set(outcomes.flatMap((o) => (o.status === 'rejected' ? [codeOf(o.reason)] : [])))],
    };
  }

  it('holds the active-job quota', async () => {
    const owner = generateIdentity();
    const result = await burst((i) =>
      createJob(
        c!.url,
        {
          name: `burst-${i}`,
          model: { kind: 'builtin', name: 'mlp', hiddenUnits: [4] },
          input: { shape: [3], numClasses: 2 },
          rounds: 1,
          secureAggregation: 'none',
        },
        owner,
      ),
    );
    expect(result).toEqual({ ok: QUOTA, codes: ['QUOTA_EXCEEDED'] });
    expect(await c!.store.countJobs({ owner: `ed25519:${owner.clientId}`, statuses: ['pending', 'running'] })).toBe(
      QUOTA,
    );
  });

  it('holds the listing quota', async () => {
    const provider = generateIdentity();
    const result = await burst((i) =>
      publishListing({
        url: c!.url,
        identity: provider,
        listing: {
          name: `burst listing ${i}`,
          schema: { shape: [3], numClasses: 2 },
          rows: 100,
          tags: ['burst'],
          pricePerRoundWei: '1',
        },
      }),
    );
    expect(result).toEqual({ ok: QUOTA, codes: ['QUOTA_EXCEEDED'] });
    expect(await c!.store.countListings(provider.clientId)).toBe(QUOTA);
  });

  it('holds the API-key quota', async () => {
    const owner = generateIdentity();
    const client = buyerClient(c!.url, owner);
    const result = await burst((i) => createApiKey(client, { name: `burst ${i}`, scopes: ['jobs:read'] }));
    expect(result).toEqual({ ok: QUOTA, codes: ['QUOTA_EXCEEDED'] });
    expect(await c!.store.listApiKeys(`ed25519:${owner.clientId}`)).toHaveLength(QUOTA);
  });
});
