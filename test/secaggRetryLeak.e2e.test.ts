/**
 * The honest-but-curious leak issue 12 measured, replayed against the fixed coordinator on real
 * sockets: seven clients, SecAgg+ cohorts of three (cohorts of 4 and 3), minClients 7, and one
 * silent pair that never answers a SecAgg+ request in the first three attempts of round 1. Every
 * such attempt misses its quorum (one cohort aborts, the other has 3 or 4 members) and is retried
 * with re-drawn cohorts; attempt 3, with everyone answering, commits.
 *
 * Before the fix, cohorts unmasked one by one and the quorum was checked afterwards, so each failed
 * attempt had already revealed its surviving cohort's sum, and retries re-use bit-identical inputs:
 * clients ended up in two or more different unmasked sums. Now the coordinator checks the round's
 * quorum before any cohort's consistency check. The test records, at the coordinator (a recording
 * wrapper around the real `secagg` mode, installed through StartOptions.modes), every sum it
 * unmasked with its members, and, on every client, each SecAgg+ stage it answered.
 */
import { TributaryClient } from '../client/tributaryClient';
import type { CoordinatorAggregationMode } from '../coordinator/aggregation/aggregationMode';
import { splitCohorts } from '../coordinator/aggregation/secagg/secaggCohorts';
import { createSecAggMode } from '../coordinator/aggregation/secagg/secaggMode';
import { startCoordinator, type Coordinator } from '../coordinator/server';
import { generateIdentity } from '../shared/identity/keyPair';
import type { JobSpecInput } from '../shared/schemas/jobSpec';
import type { SecAggRequest } from '../shared/schemas/messages';
import { createJob } from './support/rest';
import { connectionOfLater } from './support/secureRounds';
import { separableDataset } from './support/syntheticCsv';

jest.setTimeout(240_000);

const FEATURES = 4;
const SILENT_ATTEMPTS = 3;
const SEED = 5;

const spec: JobSpecInput = {
  name: 'secagg-retry-leak',
  model: { kind: 'builtin', name: 'mlp', hiddenUnits: [4] },
  input: { shape: [FEATURES], numClasses: 2 },
  rounds: 1,
  // All seven in every attempt (the runner starts once minClients are connected).
  minClients: 7,
  maxClients: 7,
  localEpochs: 1,
  batchSize: 16,
  learningRate: 0.1,
  roundDeadlineMs: 120_000,
  quorumTimeoutMs: 120_000,
  maxRoundRetries: SILENT_ATTEMPTS,
  seed: SEED,
  secureAggregation: 'secagg',
  secagg: { cohortSize: 3, stageTimeoutMs: 8_000, maxExampleWeight: 1000 },
};

/** Every sum the coordinator unmasked, with its members. */
interface UnmaskedSum {
  round: number;
  attempt: number;
  members: string[];
}

/** The real secagg mode, recording the parts of every sum it reveals. */
function recordingSecAgg(sums: UnmaskedSum[]): CoordinatorAggregationMode {
  const inner = createSecAggMode();
  return {
    ...inner,
    openCollection(context) {
      const collection = inner.openCollection(context);
      return {
        collect: () => collection.collect(),
        reveal: async () => {
          const revealed = await collection.reveal();
          for (const part of revealed.parts ?? []) {
            sums.push({ round: context.round, attempt: context.attempt, members: [...part.members] });
          }
          return revealed;
        },
        receive: (clientId, message) => collection.receive(clientId, message),
        dropped: (clientId, reason) => collection.dropped(clientId, reason),
        stop: () => collection.stop(),
      };
    },
  };
}

/** Clients whose membership count in `sums` is two or more. */
const inTwoOrMore = (sums: ReadonlyArray<{ members: readonly string[] }>) => {
  const count = new Map<string, number>();
  for (const s of sums) for (const id of s.members) count.set(id, (count.get(id) ?? 0) + 1);
  return [...count].filter(([, c]) => c > 1).map(([id]) => id);
};

describe('a retried SecAgg+ round with cohorts, against an honest-but-curious coordinator', () => {
  const sums: UnmaskedSum[] = [];
  let coordinator: Coordinator;
  const clients: TributaryClient[] = [];

  beforeAll(async () => {
    coordinator = await startCoordinator(
      { port: 0, logLevel: 'error' },
      { modes: { secagg: () => recordingSecAgg(sums) } },
    );
  });

  afterAll(async () => {
    for (const c of clients) c.close();
    await coordinator?.close();
  });

  it('no client’s input ends up in two unmasked sums across the attempts of the round', async () => {
    const jobId = await createJob(coordinator.url, spec);
    /** The SecAgg+ stages each client answered, as `attempt:stage`. */
    const answered = new Map<string, string[]>();
    const silent: string[] = [];
    for (let i = 0; i < 7; i++) {
      const client = new TributaryClient({
        url: coordinator.url,
        jobId,
        identity: generateIdentity(),
        dataset: separableDataset(40 + 10 * i, FEATURES, 70 + i),
        backend: 'cpu',
      });
      answered.set(client.clientId, []);
      client.on('modeStep', (s) => answered.get(client.clientId)!.push(`${s.attempt}:${s.stage}`));
      if (i < 2) {
        // The silent pair: its SecAgg+ requests of the first attempts never reach the client's mode.
        silent.push(client.clientId);
        connectionOfLater(client, (conn) => {
          const emit = conn.emit.bind(conn) as (event: string, ...args: unknown[]) => boolean;
          (conn as { emit: typeof emit }).emit = (event, ...args) =>
            event === 'secaggRequest' && (args[0] as SecAggRequest).attempt < SILENT_ATTEMPTS
              ? false
              : emit(event, ...args);
        });
      }
      client.run().catch(() => undefined);
      clients.push(client);
    }
    const job = await coordinator.jobs.waitForJob(jobId);
    expect(job.status).toBe('completed');
    const rounds = (await coordinator.store.listRounds(jobId)).sort((a, b) => a.attempt - b.attempt);
    expect(rounds.map((r) => [r.attempt, r.status])).toEqual([
      [0, 'failed'],
      [1, 'failed'],
      [2, 'failed'],
      [3, 'completed'],
    ]);
    for (const r of rounds.slice(0, SILENT_ATTEMPTS)) {
      expect(r.selected).toHaveLength(7);
      expect(r.failureReason).toMatch(/^ROUND_QUORUM_NOT_MET/);
      for (const id of silent) expect(r.participants).not.toContain(id);
    }

    // What the old design would have unmasked: in each failed attempt, every cohort that reached the
    // end of collection (its members among the attempt's participants), plus the committed cohorts.
    const wouldHave = rounds.flatMap((r) => {
      if (r.status === 'completed') return (r.cohorts ?? []).map((members) => ({ members }));
      const cohorts = splitCohorts(r.selected, 3, { seed: SEED, round: r.round, attempt: r.attempt });
      return cohorts
        .map((c) => ({ members: c.filter((id) => r.participants.includes(id)) }))
        .filter((c) => c.members.length > 0);
    });
    expect(wouldHave.length).toBeGreaterThan(2);
    expect(inTwoOrMore(wouldHave).length).toBeGreaterThan(0);

    // What the coordinator did unmask: the two cohorts of the committed attempt, every client once.
    expect(sums.map((s) => [s.round, s.attempt, s.members.length]).sort()).toEqual([
      [1, 3, 3],
      [1, 3, 4],
    ]);
    expect(inTwoOrMore(sums)).toEqual([]);
    expect(sums.flatMap((s) => s.members).sort()).toEqual(clients.map((c) => c.clientId).sort());
    expect(sums.map((s) => s.members)).toEqual(expect.arrayContaining(rounds[SILENT_ATTEMPTS].cohorts ?? []));
    // No client signed a survivor set or revealed a share in a failed attempt: only attempt 3 got that far.
    for (const [id, stages] of answered) {
      const late = stages.filter((s) => s.endsWith('consistency-check') || s.endsWith('unmask'));
      expect([id, late]).toEqual([id, ['3:consistency-check', '3:unmask']]);
    }
  });
});
