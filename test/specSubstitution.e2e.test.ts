/**
 * A coordinator that wants a provider's update serves it another spec than the one the provider
 * agreed to: the buyer published a `secagg` job (and its canonical spec hash, the hash a paid job's
 * escrow holds), the coordinator hosts the job id as `none`, and the project's own client, which takes
 * the spec from the join result, would upload its update in the clear. Played with the real
 * coordinator and real clients over loopback. A provider that pins the spec hash refuses the join
 * result (JOB_SPEC_MISMATCH) before training and sends nothing. An unpinned provider that did not
 * consent to plaintext (the default) refuses a `none` spec the same way; one pinned to the spec
 * actually served, or one that allowed plaintext, takes part.
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

    const client = (i: number, options: { expectedSpecHash?: string; allowPlaintext?: boolean }) => {
      const c = createResearchClient({
        url: coordinator!.url,
        jobId,
        identity: generateIdentity(),
        dataset: separableDataset(40, 4, 90 + i),
        backend: testBackend(),
        reconnectDelayMs: 50,
        ...options,
      });
      clients.push(c);
      return c;
    };
    const refusal = async (c: TributaryClient) => {
      const trained: number[] = [];
      c.on('roundTrained', (e: { round: number }) => trained.push(e.round));
      const outcome = await c.run().then(
        () => 'ran',
        (e: unknown) => `${(e as { code?: string }).code ?? String(e)}: ${(e as Error).message}`,
      );
      return { outcome, trained };
    };
    // Pinned to the agreed hash: refused for the hash, even though this provider would allow plaintext.
    const pinnedToAgreed = client(0, { expectedSpecHash: agreed, allowPlaintext: true });
    const pinned = await refusal(pinnedToAgreed);
    expect(pinned.outcome).toMatch(/^JOB_SPEC_MISMATCH: .*pinned/);
    expect(pinned.trained).toEqual([]);
    // Unpinned, with the defaults: refused because the served mode sends updates in the clear.
    const defaultProvider = client(3, {});
    const unpinnedDefault = await refusal(defaultProvider);
    expect(unpinnedDefault.outcome).toMatch(/^JOB_SPEC_MISMATCH: .*in the clear/);
    expect(unpinnedDefault.trained).toEqual([]);

    // A provider pinned to the spec actually served, and an unpinned one that allowed plaintext, take part.
    const pinnedToServed = client(1, { expectedSpecHash: actual, allowPlaintext: true });
    const unpinned = client(2, { allowPlaintext: true });
    const finished = await Promise.all([pinnedToServed.run(), unpinned.run()]);
    expect(finished.map((f) => f.status)).toEqual(['completed', 'completed']);
    const [round] = await coordinator.store.listRounds(jobId);
    expect(new Set(round.participants)).toEqual(new Set([pinnedToServed.clientId, unpinned.clientId]));
    expect(round.participants).not.toContain(pinnedToAgreed.clientId);
    expect(round.participants).not.toContain(defaultProvider.clientId);
  });
});
