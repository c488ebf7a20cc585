import { startCoordinator, type Coordinator } from '../coordinator/server';
import { MemoryStore } from '../coordinator/store/memoryStore';
import { createBuyerClient, createJob } from '../client/buyer';
import type { JobSpecInput } from '../shared/schemas/jobSpec';
import type { RoundRecord } from '../coordinator/store/store';
import { createLogger } from '../coordinator/logger';
import { generateFastIdentity } from './fastIdentity';
import { median, percentile, round, waitFor } from './harness';
import { LightClient } from './lightClient';

/** One scenario: N light clients, one warm-up round, then `measuredRounds` measured rounds. */
export interface OrchestrationScenario {
  clients: number;
  roundsPlanned: number;
  roundsMeasured: number;
  completed: boolean;
  /** Why the scenario stopped early, if it did. */
  stoppedEarly?: string;
  /** Round wall time (RoundRecord.metrics.durationMs: quorum check → aggregated and encoded) minus the slowest client's training time (0 here). */
  overheadMsMedian: number;
  overheadMsP95: number;
  overheadMsMax: number;
  /** Start of one round to the start of the next (includes the commit to the store and the round:closed messages). */
  cycleMsMedian: number;
  /** Per round: the slowest client's task → commit-acknowledged latency. */
  slowestClientLatencyMsMedian: number;
  /** Per round, summed over clients: synchronous load-generator work on this event loop (decode, encode, sign, emit). */
  loadGeneratorBusyMsMedian: number;
  /** Process CPU (user+sys, coordinator and clients together) per measured round. */
  processCpuMsPerRound: number;
  overheadMsPerClientMedian: number;
  clientErrors: string[];
}

const JOB: Omit<JobSpecInput, 'rounds'> = {
  name: 'bench-orchestration',
  // 46 parameters: the model is deliberately negligible, so the round is all protocol.
  model: { kind: 'builtin', name: 'mlp', hiddenUnits: [4] },
  input: { shape: [8], numClasses: 2 },
  fractionFit: 1,
  // Plaintext uploads: this measures the protocol's own overhead (secure modes: secureModes.bench.ts).
  secureAggregation: 'none',
  roundDeadlineMs: 30_000,
  quorumTimeoutMs: 60_000,
  maxRoundRetries: 0,
  seed: 0,
};

async function withDeadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>(
        (_, reject) => (timer = setTimeout(() => reject(new Error(`${what} took more than ${ms} ms`)), ms)),
      ),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

async function scenario(clients: number, measuredRounds: number, budgetMs: number): Promise<OrchestrationScenario> {
  const deadline = Date.now() + budgetMs;
  const left = () => Math.max(1, deadline - Date.now());
  let cpuAtWarm: NodeJS.CpuUsage | null = null;
  let cpuAtEnd: NodeJS.CpuUsage | null = null;
  const roundsPlanned = 1 + measuredRounds;
  let coordinator: Coordinator | null = null;
  const conns: LightClient[] = [];
  let stoppedEarly: string | undefined;
  let rounds: RoundRecord[] = [];
  let jobId = '';
  // The embedded store whatever MONGODB_URI says: the figure is the coordinator's, not a database's.
  const store = new MemoryStore();
  try {
    coordinator = await startCoordinator(
      // Hundreds of light clients connect from one address: lift the per-IP connection limit.
      { host: '127.0.0.1', port: 0, logLevel: 'error', backend: 'cpu', socketConnectionsPerIpPerMinute: 10_000_000 },
      {
        store,
        logger: createLogger('error', 'bench-coordinator'),
        onRoundCompleted: ({ round: r }) => {
          if (r.round === 1) cpuAtWarm = process.cpuUsage();
          if (r.round === roundsPlanned) cpuAtEnd = process.cpuUsage(cpuAtWarm ?? undefined);
        },
      },
    );
    const buyer = createBuyerClient({ url: coordinator.url, identity: generateFastIdentity() });
    jobId = (
      await createJob(buyer, { spec: { ...JOB, rounds: roundsPlanned, minClients: clients, maxClients: clients } })
    ).id;
    for (let i = 0; i < clients; i++) conns.push(new LightClient(coordinator.url, generateFastIdentity()));
    await withDeadline(Promise.all(conns.map((c) => c.open())), left(), 'connecting');
    await withDeadline(Promise.all(conns.map((c) => c.joinJob(jobId))), left(), 'joining');
    const job = await withDeadline(coordinator.jobs.waitForJob(jobId), left(), 'the job');
    if (job.status !== 'completed') stoppedEarly = `job ${job.status}: ${job.failureReason ?? ''}`;
    // The last commit's acknowledgements may still be in flight when the job completes.
    await waitFor(
      () => conns.every((c) => c.rounds.some((x) => x.round === roundsPlanned) || c.errors.length > 0),
      Math.min(5_000, left()),
    );
  } catch (err) {
    stoppedEarly = (err as Error).message;
  } finally {
    if (coordinator && jobId) rounds = await coordinator.store.listRounds(jobId).catch(() => []);
    for (const c of conns) c.close();
    await coordinator?.close();
    await store.close();
  }

  const measured = rounds.filter((r) => r.status === 'completed' && r.round > 1).sort((a, b) => a.round - b.round);
  // The clients train for 0 s, so the slowest client's training time is 0 and the overhead is the round time.
  const overhead = measured.map((r) => r.metrics.durationMs);
  const cycles = measured.slice(1).map((r, i) => r.startedAt.getTime() - measured[i].startedAt.getTime());
  const byRound = (pick: (l: { latencyMs: number; busyMs: number }[]) => number) =>
    measured.map((r) => pick(conns.flatMap((c) => c.rounds.filter((x) => x.round === r.round))));
  const slowest = byRound((l) => Math.max(...l.map((x) => x.latencyMs)));
  const busy = byRound((l) => l.reduce((s, x) => s + x.busyMs, 0));
  const cpu = cpuAtEnd as NodeJS.CpuUsage | null;
  return {
    clients,
    roundsPlanned,
    roundsMeasured: measured.length,
    completed: !stoppedEarly && measured.length === measuredRounds,
    ...(stoppedEarly ? { stoppedEarly } : {}),
    overheadMsMedian: round(median(overhead)),
    overheadMsP95: round(percentile(overhead, 95)),
    overheadMsMax: round(Math.max(...overhead)),
    cycleMsMedian: round(median(cycles)),
    slowestClientLatencyMsMedian: round(median(slowest)),
    loadGeneratorBusyMsMedian: round(median(busy)),
    processCpuMsPerRound: cpu && measured.length > 0 ? round((cpu.user + cpu.system) / 1000 / measured.length) : NaN,
    overheadMsPerClientMedian: round(median(overhead) / clients),
    clientErrors: conns.flatMap((c) => c.errors).slice(0, 5),
  };
}

/**
 * Coordinator overhead per round with 10 and 100 light clients on loopback, coordinator and clients
 * in this process (see LightClient: protocol-complete, zero training time). Each scenario is bounded
 * by `budgetMs` and always closes its clients and coordinator.
 */
export async function orchestrationBench(
  clientCounts: readonly number[] = [10, 100],
  measuredRounds = 20,
  budgetMs = 120_000,
) {
  const scenarios: OrchestrationScenario[] = [];
  for (const n of clientCounts) scenarios.push(await scenario(n, measuredRounds, budgetMs));
  return {
    clientKind:
      'LightClient: real CoordinatorConnection, downloads + hash-checks the model over HTTP, uploads a zero delta (0 s training), node:crypto signer',
    model: 'mlp hiddenUnits [4] on input [8], 2 classes (46 parameters)',
    warmupRounds: 1,
    scenarios,
  };
}
