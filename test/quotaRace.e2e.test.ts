/**
 * Per-identity quotas against concurrency, over real HTTP on loopback: one identity fires a burst of
 * well-formed, separately signed requests at once (job specs, listings, API keys), each of which would
 * pass the quota alone. A quota counted and then written with an await in between lets the whole
 * burst through; the coordinator must hold each quota exactly, refusing the rest with 429
 * QUOTA_EXCEEDED, and store nothing for them. The last variant splits each burst over two clustered
 * coordinators on one FerretDB (two nodes behind a balancer): a per-process lock would admit the
 * quota once per node; the store's claim slots hold it once for the cluster.
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

const hasMongo = mongoSourceForTests() !== null;
const setups: Array<['memory store' | 'mongodb store' | 'two nodes on one mongodb', boolean]> = [
  ['memory store', true],
  ['mongodb store', hasMongo],
  ['two nodes on one mongodb', hasMongo],
];

describe.each(setups)('per-identity quotas under a burst of concurrent requests (%s)', (setup, available) => {
  const it = available ? global.it : global.it.skip;
  let nodes: Coordinator[] = [];
  let mongo: TestMongo | null = null;
  /** The node request `i` goes to (alternating when there are two). */
  const at = (i: number) => nodes[i % nodes.length];

  beforeAll(async () => {
    if (!available) return;
    if (setup !== 'memory store') mongo = await mongoUriForTests();
    const count = setup === 'two nodes on one mongodb' ? 2 : 1;
    for (let n = 0; n < count; n++) {
      nodes.push(
        await startCoordinator({
          port: 0,
          logLevel: 'error',
          maxActiveJobsPerIdentity: QUOTA,
          maxListingsPerProvider: QUOTA,
          maxApiKeysPerIdentity: QUOTA,
          ...(mongo ? { mongodbUri: mongo.uri, dbName: mongo.dbName } : {}),
          ...(count > 1 ? { cluster: true } : {}),
        }),
      );
    }
  });
  afterAll(async () => {
    for (const node of nodes) await node.close();
    nodes = [];
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
        at(i).url,
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
    expect(
      await nodes[0].store.countJobs({ owner: `ed25519:${owner.clientId}`, statuses: ['pending', 'running'] }),
    ).toBe(QUOTA);
  });

  it('holds the listing quota', async () => {
    const provider = generateIdentity();
    const result = await burst((i) =>
      publishListing({
        url: at(i).url,
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
    expect(await nodes[0].store.countListings(provider.clientId)).toBe(QUOTA);
  });

  it('holds the API-key quota', async () => {
    const owner = generateIdentity();
    const result = await burst((i) =>
      createApiKey(buyerClient(at(i).url, owner), { name: `burst ${i}`, scopes: ['jobs:read'] }),
    );
    expect(result).toEqual({ ok: QUOTA, codes: ['QUOTA_EXCEEDED'] });
    expect(await nodes[0].store.listApiKeys(`ed25519:${owner.clientId}`)).toHaveLength(QUOTA);
  });
});
