/**
 * SecAgg+ dropouts at every stage, over the real sockets on 127.0.0.1: seven in-process
 * TributaryClients train a small MLP; some of them vanish (their socket closes abruptly, which is what
 * the coordinator sees when a client process is killed) when the request of a given stage reaches
 * them, before answering it.
 *
 * n = 7 with the default neighbour graph (k = min(n − 1, 2⌈log2 n⌉) = 6) and threshold t = ⌊k/2⌋ + 1
 * = 4. A client's secrets are shared among its k neighbours (not itself), so every surviving client
 * must keep t live neighbours: up to k − t = 2 dropouts the round must commit with exactly the sum of
 * the inputs that entered it (the survivors' when the victims left before sending a masked vector;
 * everyone's when they left after, their self-masks rebuilt from the survivors' shares). Beyond it the
 * round must abort cleanly: a failed round record with the reason, no checkpoint, and
 * (maxRoundRetries 0) a failed job, never a hang.
 */
import { TributaryClient } from '../client/tributaryClient';
import { startCoordinator, type Coordinator } from '../coordinator/server';
import type { RoundCompletedEvent } from '../coordinator/ports';
import { generateIdentity } from '../shared/identity/keyPair';
import type { JobSpecInput } from '../shared/schemas/jobSpec';
import { dequantizeWeightedSum, MODULUS, SecAggPlusClient, type ClientToServer } from '../shared/secagg';
import { decodeBinaryJson } from '../shared/codec/binaryJson';
import type { SecAggRequest } from '../shared/schemas/messages';
import { EVENTS } from '../shared/schemas/protocol';
import { createJob } from './support/rest';
import { connectionOfLater } from './support/secureRounds';
import { separableDataset } from './support/syntheticCsv';

jest.setTimeout(300_000);

const FEATURES = 6;
const SIZES = [80, 120, 100, 140, 90, 110, 70];
const CLIPPING_RANGE = 8;
const QUANTIZATION = { clippingRange: CLIPPING_RANGE, quantizationRange: 2 ** 22 };

type Stage = 'share-keys' | 'collect-masked-vectors' | 'unmask';

function spec(name: string): JobSpecInput {
  return {
    name,
    model: { kind: 'builtin', name: 'mlp', hiddenUnits: [8] },
    input: { shape: [FEATURES], numClasses: 2 },
    // Clients join one by one, so round 1 may start with only three: victims act in the first round
    // that selected all seven. Six rounds leave room for the last client to join on a loaded machine
    // (a job whose victims acted fails or drops them; the rest only adds short rounds).
    rounds: 6,
    minClients: 3,
    maxClients: 7,
    localEpochs: 1,
    batchSize: 16,
    learningRate: 0.1,
    roundDeadlineMs: 120_000,
    quorumTimeoutMs: 120_000,
    maxRoundRetries: 0,
    seed: 9,
    secureAggregation: 'secagg',
    secagg: { stageTimeoutMs: 30_000, clippingRange: CLIPPING_RANGE, maxExampleWeight: 1000 },
  };
}

describe('SecAgg+ dropouts at each stage, end to end', () => {
  let coordinator: Coordinator;
  const clients: TributaryClient[] = [];
  /** Each client's quantised input (with the appended weight), captured inside the client, by `roundId clientId`. */
  const inputs = new Map<string, Uint32Array>();
  /** Round-completed events by `jobId:round`. */
  const completed = new Map<string, RoundCompletedEvent>();
  const originalHandle = SecAggPlusClient.prototype.handle;

  beforeAll(async () => {
    SecAggPlusClient.prototype.handle = async function (
      this: SecAggPlusClient,
      message: unknown,
      input?: Uint32Array,
    ): Promise<ClientToServer> {
      const reply = await originalHandle.call(this, message, input);
      if (input) inputs.set(`${(reply as { roundId: string }).roundId} ${this.clientId}`, Uint32Array.from(input));
      return reply;
    };
    coordinator = await startCoordinator(
      { port: 0, logLevel: 'silent', backend: 'cpu' },
      {
        onRoundCompleted: (event) => void completed.set(`${event.job.id}:${event.round.round}`, event),
      },
    );
  });

  afterAll(async () => {
    SecAggPlusClient.prototype.handle = originalHandle;
    for (const c of clients) c.close();
    await coordinator?.close();
  });

  /** Runs one job in which the clients at `victims` vanish on receiving `stage`'s request. */
  async function runWithDropouts(name: string, stage: Stage, victims: number[]) {
    const jobId = await createJob(coordinator.url, spec(name));
    const ids: string[] = [];
    const dropped: string[] = [];
    SIZES.forEach((size, i) => {
      const client = new TributaryClient({
        url: coordinator.url,
        jobId,
        identity: generateIdentity(),
        dataset: separableDataset(size, FEATURES, 40 + i),
        backend: 'cpu',
      });
      ids.push(client.clientId);
      if (victims.includes(i)) {
        let fullAttempt: string | undefined;
        connectionOfLater(client, (conn) =>
          conn.socket.on(EVENTS.secaggRequest, (req: SecAggRequest) => {
            if (
              req.stage === 'setup' &&
              (decodeBinaryJson(req.payload) as { clientIds: string[] }).clientIds.length === SIZES.length
            ) {
              fullAttempt ??= `${req.round}:${req.attempt}`;
            }
          }),
        );
        client.on('modeStep', (r) => {
          if (r.stage !== stage || fullAttempt !== `${r.round}:${r.attempt}` || dropped.includes(client.clientId))
            return;
          dropped.push(client.clientId);
          client.close();
        });
      }
      client.run().catch(() => undefined);
      clients.push(client);
    });
    const job = await coordinator.jobs.waitForJob(jobId);
    const rounds = await coordinator.store.listRounds(jobId);
    // The attempt that selected all seven clients: the one the victims left.
    const full = rounds.find((r) => r.selected.length === SIZES.length);
    if (!full) {
      const seen = rounds.map((r) => `round ${r.round}.${r.attempt ?? 0} ${r.status} with ${r.selected.length}`);
      throw new Error(
        `no round of ${jobId} selected all ${SIZES.length} clients (${seen.join('; ')}; job ${job.status})`,
      );
    }
    return { jobId, job, rounds, full, ids, dropped };
  }

  /** The dequantised sum of exactly these clients' captured inputs: what the coordinator must learn. */
  function expectedSum(roundId: string, clientIds: string[]): Float64Array {
    const vectors = clientIds.map((id) => {
      const v = inputs.get(`${roundId} ${id}`);
      if (!v) throw new Error(`no captured input for ${id.slice(0, 8)}`);
      return v;
    });
    const sum = new Uint32Array(vectors[0].length);
    for (const v of vectors) for (let i = 0; i < v.length; i++) sum[i] = (sum[i] + v[i]) % MODULUS;
    return dequantizeWeightedSum(sum, vectors.length, QUANTIZATION);
  }

  function learnedSum(jobId: string, round: number): Float64Array {
    const event = completed.get(`${jobId}:${round}`);
    if (!event?.parts) throw new Error(`job ${jobId} reported no SecAgg+ sum for round ${round}`);
    expect(event.parts).toHaveLength(1);
    const { weightedDeltaSum, totalWeight } = event.parts[0].updates;
    const flat = new Float64Array(weightedDeltaSum.reduce((n, t) => n + t.length, 0) + 1);
    let offset = 0;
    for (const t of weightedDeltaSum) {
      flat.set(t, offset);
      offset += t.length;
    }
    flat[offset] = totalWeight;
    return flat;
  }

  it.each([
    // Left after advertising keys: their shares never went out, so they are simply not in the sum.
    ['share-keys', [1, 3], 'survivors'],
    // Left after sending shares, before a masked vector: survivors' shares rebuild their pairwise masks.
    ['collect-masked-vectors', [0, 4], 'survivors'],
    // Left after sending a masked vector: their input counts, their self-mask is rebuilt from shares.
    ['unmask', [2, 3], 'everyone'],
  ] as const)(
    'two of seven clients vanishing at %s: the round commits exactly the sum of those inputs',
    async (stage, victims, whose) => {
      const {
        jobId,
        job,
        rounds,
        full: round,
        ids,
        dropped,
      } = await runWithDropouts(`dropout-${stage}`, stage, [...victims]);
      expect(job.status).toBe('completed');
      expect(dropped.sort()).toEqual(victims.map((i) => ids[i]).sort());
      expect(rounds.filter((r) => r.status === 'completed').map((r) => r.round)).toEqual([1, 2, 3, 4, 5, 6]);
      expect(round.status).toBe('completed');
      const contributors = whose === 'everyone' ? ids : ids.filter((id) => !dropped.includes(id));
      expect([...round.participants].sort()).toEqual([...contributors].sort());
      if (whose === 'survivors') {
        expect(round.failures.map((f) => f.clientId).sort()).toEqual([...dropped].sort());
        for (const f of round.failures) expect(f.reason).toContain(stage);
      }
      // Bit-for-bit: the same mod-2^32 sum, dequantised the same way.
      const roundId = `${jobId}:${round.round}:${round.attempt}`;
      // The coordinator reports sums in examples: the dequantised ratio sums times maxExampleWeight (1000).
      expect([...learnedSum(jobId, round.round)]).toEqual([...expectedSum(roundId, contributors)].map((v) => v * 1000));
    },
  );

  it.each([
    ['collect-masked-vectors', [0, 1, 2]],
    ['unmask', [1, 2, 4]],
    ['share-keys', [3, 5, 6]],
  ] as const)(
    'three of seven clients vanishing at %s (beyond k - t): the round aborts cleanly and the job fails with the reason',
    async (stage, victims) => {
      const { jobId, job, rounds, full, dropped } = await runWithDropouts(`abort-${stage}`, stage, [...victims]);
      expect(dropped).toHaveLength(3);
      expect(job.status).toBe('failed');
      expect(full.status).toBe('failed');
      expect(rounds[rounds.length - 1]).toBe(full);
      expect(full.failureReason).toMatch(/^(ROUND_QUORUM_NOT_MET|SECAGG_)/);
      expect(job.failureReason).toContain(`Round ${full.round} failed`);
      // Nothing of that round was committed: the job points at the round before, which has the only checkpoints.
      expect(job.currentRound).toBe(full.round - 1);
      expect(await coordinator.store.loadCheckpoint(jobId, full.round)).toBeNull();
      expect(completed.has(`${jobId}:${full.round}`)).toBe(false);
    },
  );
});
