/**
 * One escrow job pays one coordinator job, also when the signed spec is posted several times at
 * once (the buyer's retry racing its first post, or a copy of the signed spec posted by someone
 * else alongside), on a real anvil over real HTTP: each post checks "no job is bound to this escrow
 * job yet" and then verifies the binding on chain, an await in between, so a burst could bind
 * several jobs to one budget, and their per-round commits would collide. Exactly one post must win;
 * the others get 409 ESCROW_ALREADY_BOUND and store nothing. The second case posts the burst at two
 * clustered coordinators on one FerretDB: a per-process lock would bind one job per node; the escrow
 * claim in the store binds one for the cluster.
 */
import type { JsonRpcProvider } from 'ethers';
import { createSignedFetch } from '../client/signedFetch';
import { startCoordinator, type Coordinator } from '../coordinator/server';
import { generateIdentity } from '../shared/identity/keyPair';
import { mongoSourceForTests, mongoUriForTests, type TestMongo } from './support/ferretdb';
import type { JobSpecInput } from '../shared/schemas/jobSpec';
import { startAnvil, type Anvil } from './support/anvil';
import { deployAsBuyer, fundAndBindJob, localProvider, testChainOptions } from './support/chainJob';

jest.setTimeout(120_000);

const spec: Omit<JobSpecInput, 'chain'> = {
  name: 'escrow-race',
  model: { kind: 'builtin', name: 'mlp', hiddenUnits: [4] },
  input: { shape: [4], numClasses: 2 },
  rounds: 1,
  minClients: 3,
  secureAggregation: 'none',
};

describe('one job per escrow job under concurrent posts', () => {
  let anvil: Anvil | undefined;
  let provider: JsonRpcProvider | undefined;
  let coordinator: Coordinator | undefined;
  const nodes: Coordinator[] = [];
  let mongo: TestMongo | null = null;

  afterAll(async () => {
    await coordinator?.close();
    for (const node of nodes) await node.close();
    await mongo?.stop();
    provider?.destroy();
    await anvil?.stop();
  });

  /** Posts one body `count` times at once, spread over `urls` and two identities: "status code" per post. */
  async function postAtOnce(urls: string[], body: string, count: number): Promise<string[]> {
    const posters = [generateIdentity(), generateIdentity()].map((id) => createSignedFetch(id));
    return Promise.all(
      Array.from({ length: count }, async (_, i) => {
        const res = await posters[i % 2](`${urls[i % urls.length]}/v1/jobs`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body,
        });
        return `${res.status} ${((await res.json()) as { error?: { code: string } }).error?.code ?? 'ok'}`;
      }),
    );
  }

  it('binds exactly one of six simultaneous posts of one signed spec, from two identities', async () => {
    anvil = await startAnvil();
    provider = localProvider(anvil.url);
    const { escrow } = await deployAsBuyer(provider);
    coordinator = await startCoordinator({
      port: 0,
      logLevel: 'error',
      ...testChainOptions(anvil.url, 3000),
    });
    const bound = await fundAndBindJob(escrow, provider, coordinator.chain.coordinatorAddress!, spec, 10n ** 15n);
    const answers = await postAtOnce([coordinator.url], JSON.stringify(bound), 6);
    expect(answers.filter((a) => a === '201 ok')).toHaveLength(1);
    expect(answers.filter((a) => a !== '201 ok')).toEqual(Array(5).fill('409 ESCROW_ALREADY_BOUND'));
    const boundJobs = (await coordinator.store.listJobs()).filter((j) => j.spec.chain?.jobId === bound.chain.jobId);
    expect(boundJobs).toHaveLength(1);
  });

  const twoNodes = mongoSourceForTests() !== null ? it : it.skip;
  twoNodes('binds exactly one of eight simultaneous posts spread over two nodes sharing FerretDB', async () => {
    anvil ??= await startAnvil();
    provider ??= localProvider(anvil.url);
    const { escrow } = await deployAsBuyer(provider);
    mongo = await mongoUriForTests();
    for (let n = 0; n < 2; n++) {
      nodes.push(
        await startCoordinator({
          port: 0,
          logLevel: 'error',
          cluster: true,
          mongodbUri: mongo!.uri,
          dbName: mongo!.dbName,
          ...testChainOptions(anvil.url, 3000),
        }),
      );
    }
    const bound = await fundAndBindJob(escrow, provider, nodes[0].chain.coordinatorAddress!, spec, 10n ** 15n);
    const answers = await postAtOnce(
      nodes.map((n) => n.url),
      JSON.stringify(bound),
      8,
    );
    expect(answers.filter((a) => a === '201 ok')).toHaveLength(1);
    expect(answers.filter((a) => a !== '201 ok')).toEqual(Array(7).fill('409 ESCROW_ALREADY_BOUND'));
    const boundJobs = (await nodes[1].store.listJobs()).filter((j) => j.spec.chain?.jobId === bound.chain.jobId);
    expect(boundJobs).toHaveLength(1);
  });
});
