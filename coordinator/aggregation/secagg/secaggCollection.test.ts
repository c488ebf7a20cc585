import { decodeBinaryJson, encodeBinaryJson } from '../../../shared/codec/binaryJson';
import { JobSpecSchema } from '../../../shared/schemas/jobSpec';
import type { SecAggRequest } from '../../../shared/schemas/messages';
import { quantize, type SecAggParameters, secaggPolicyFor, weightUpdate } from '../../../shared/secagg';
import { makeClient, makeIdentities } from '../../../shared/secagg/testHarness';
import { createLogger } from '../../logger';
import type { JobRecord } from '../../store/store';
import { ClientDirectory } from '../../transport/clientDirectory';
import { splitCohorts } from './secaggCohorts';
import { SecAggCollection } from './secaggCollection';

const identities = [...makeIdentities(7).values()];
const ids = identities.map((i) => i.clientId);
const manifest = [{ name: 'w', shape: [3] }];

/**
 * Seven clients answering every SecAgg+ request over a fake directory, in cohorts of three (4 + 3).
 * Records which stages reached which client.
 */
function setup(minClients: number) {
  const spec = JobSpecSchema.parse({
    name: 'collection',
    model: { kind: 'builtin', name: 'mlp', hiddenUnits: [4] },
    input: { shape: [3], numClasses: 2 },
    rounds: 1,
    minClients,
    secureAggregation: 'secagg',
    secagg: { cohortSize: 3, stageTimeoutMs: 1_000, maxExampleWeight: 100 },
  });
  if (spec.secureAggregation !== 'secagg') throw new Error('expected a secagg spec');
  const at = new Date(0);
  const job: JobRecord = {
    id: 'job1',
    spec,
    status: 'running',
    currentRound: 0,
    modelHash: '0'.repeat(64),
    weightManifest: manifest,
    createdAt: at,
    updatedAt: at,
  };
  const directory = new ClientDirectory();
  const collection = new SecAggCollection(
    {
      job,
      round: 1,
      attempt: 0,
      selected: ids,
      deadline: 0,
      chunkBytes: 1 << 20,
      keepParts: true,
      directory,
      logger: createLogger('silent'),
      now: () => Date.now(),
    },
    spec.secagg,
  );
  const policy = secaggPolicyFor(spec.secagg, minClients, 4);
  const sessions = new Map<string, ReturnType<typeof makeClient>>();
  const reached: string[] = [];
  for (const identity of identities) {
    const id = identity.clientId;
    let params: SecAggParameters | undefined;
    directory.connect({
      clientId: id,
      send: (_event, payload) => {
        const request = payload as SecAggRequest;
        reached.push(`${request.stage} ${id}`);
        void (async () => {
          const message = decodeBinaryJson(request.payload) as { roundId: string; params?: SecAggParameters };
          if (request.stage === 'setup') {
            params = message.params;
            sessions.set(id, makeClient(identity, policy, message.roundId));
          }
          const input =
            request.stage === 'collect-masked-vectors'
              ? quantize(weightUpdate([0.1, -0.2, 0.3], 10, 100), params!).values
              : undefined;
          const reply = await sessions.get(id)!.handle(message, input);
          const { maskedVector, ...rest } = reply as typeof reply & { maskedVector?: Uint8Array };
          collection.receive(id, {
            name: 'secaggReply',
            body: { attempt: 0, stage: request.stage, reply: encodeBinaryJson(rest) },
            data: maskedVector,
          });
        })();
      },
    });
    directory.join(id, 'job1');
  }
  const cohorts = splitCohorts(ids, 3, { seed: spec.seed, round: 1, attempt: 0 });
  return { collection, reached, cohorts };
}

describe('SecAggCollection', () => {
  it('re-checks the round quorum after withdrawing survivors that left, before any cohort is sent its consistency check', async () => {
    const { collection, reached } = setup(7);
    const collected = await collection.collect();
    expect('failed' in collected).toBe(false);
    expect([...collected.participants].sort()).toEqual([...ids].sort());
    // A survivor leaves while the runner checks the quorum: 6 of the 7 required remain.
    collection.dropped(collected.participants[0], 'DISCONNECTED');
    await expect(collection.reveal()).rejects.toMatchObject({
      code: 'ROUND_QUORUM_NOT_MET',
      message: expect.stringMatching(/6 of the 7 required .* nothing was revealed/),
    });
    expect(reached.filter((r) => r.startsWith('consistency-check') || r.startsWith('unmask'))).toEqual([]);
  });

  it('unmasks the others when the round can still commit: the one that left is a dropout, its input in no sum', async () => {
    const { collection, cohorts } = setup(6);
    expect(cohorts.map((c) => c.length)).toEqual([4, 3]);
    const collected = await collection.collect();
    if ('failed' in collected) throw new Error(collected.failed);
    // One of the four-member cohort leaves (its cohort keeps three, the minimum).
    const big = cohorts[0][0];
    collection.dropped(big, 'DISCONNECTED');
    const revealed = await collection.reveal();
    expect(revealed.participants).toHaveLength(6);
    expect(revealed.participants).not.toContain(big);
    expect(revealed.parts!.flatMap((p) => p.members)).not.toContain(big);
    expect(revealed.failures).toEqual([{ clientId: big, reason: 'DISCONNECTED at consistency-check: DISCONNECTED' }]);
  });
});
