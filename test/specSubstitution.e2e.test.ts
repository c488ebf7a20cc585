/**
 * A coordinator that wants a provider's update serves it another spec than the one the provider
 * agreed to: the buyer published a `secagg` job (and its canonical spec hash, the hash a paid job's
 * escrow holds), the coordinator hosts the job id as `none`, and the project's own client, which takes
 * the spec from the join result, would upload its update in the clear. Played with the real
 * coordinator and real clients over loopback. A provider that pins the spec hash refuses the join
 * result (JOB_SPEC_MISMATCH) before training and sends nothing; one pinned to the spec actually served
 * takes part; an unpinned one trusts the coordinator, as documented, and its plaintext update arrives.
 */
import type { TributaryClient } from '../client/tributaryClient';
import { createResearchClient } from '../client/plantedClient';
import { canonicalSpecHash, parseSpecForHash } from '../contracts/escrowBinding';
import { startCoordinator, type Coordinator } from '../coordinator/server';
import { generateIdentity } from '../shared/identity/keyPair';
import { selectBackend } from '../shared/ml/backend';
import type { JobSpecInput } from '../shared/schemas/jobSpec';
import { createJob } from './support/rest';
import { separableDataset } from './support/syntheticCsv';
import { testBackend } from './support/testBackend';

jest.setTimeout(180_000);

const common: JobSpecInput = {
  name: 'agreed-spec',
  model: { kind: 'builtin', name: 'mlp', hiddenUnits: [4] },
  input: { shape: [4], numClasses: 2 },
  rounds: 1,
  minClients: 2,
  maxClients: 2,
  roundDeadlineMs: 60_000,
  quorumTimeoutMs: 60_000,
};

describe('a coordinator serving another spec at join', () => {
  let coordinator: Coordinator | undefined;
  const clients: TributaryClient[] = [];

  beforeAll(async () => {
    await selectBackend(testBackend());
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await coordinator?.close();
  });

  it('a provider pinned to the agreed spec hash refuses a plaintext spec and sends nothing', async () => {
    coordinator = await startCoordinator({ port: 0, logLevel: 'silent', backend: testBackend() });
    // What the buyer agreed to and published: secure aggregation. What the coordinator hosts: none.
    const agreed = canonicalSpecHash(
      parseSpecForHash({ ...common, secureAggregation: 'secagg', minClients: 3, maxClients: 3 }),
    );
    const served: JobSpecInput = { ...common, secureAggregation: 'none' };
    const jobId = await createJob(coordinator.url, served);
    const actual = canonicalSpecHash(parseSpecForHash(served));
    expect(actual).not.toBe(agreed);

    const client = (i: number, expectedSpecHash?: string) => {
      const c = createResearchClient({
        url: coordinator!.url,
        jobId,
        identity: generateIdentity(),
        dataset: separableDataset(40, 4, 90 + i),
        backend: testBackend(),
        reconnectDelayMs: 50,
        ...(expectedSpecHash ? { expectedSpecHash } : {}),
      });
      clients.push(c);
      return c;
    };
    const pinnedToAgreed = client(0, agreed);
    const trained: number[] = [];
    pinnedToAgreed.on('roundTrained', (e: { round: number }) => trained.push(e.round));
    const refused = await pinnedToAgreed.run().then(
      () => 'ran',
      (e: unknown) => (e as { code?: string }).code ?? String(e),
    );
    expect(refused).toBe('JOB_SPEC_MISMATCH');
    expect(trained).toEqual([]);

    // A provider pinned to the spec actually served, and an unpinned one, take part.
    const pinnedToServed = client(1, actual);
    const unpinned = client(2);
    const finished = await Promise.all([pinnedToServed.run(), unpinned.run()]);
    expect(finished.map((f) => f.status)).toEqual(['completed', 'completed']);
    const [round] = await coordinator.store.listRounds(jobId);
    expect(new Set(round.participants)).toEqual(new Set([pinnedToServed.clientId, unpinned.clientId]));
    expect(round.participants).not.toContain(pinnedToAgreed.clientId);
  });
});
