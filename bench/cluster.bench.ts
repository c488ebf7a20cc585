/**
 * Several coordinators, one federation (issue 16): what three nodes buy over one, on this machine.
 * Every node is its own process (bench/coordinatorProcess.ts) on one FerretDB and one redis-server
 * started here and stopped by PID; the load generator is this process.
 *
 * - idle: authenticated idle socket.io clients held by 1 node vs 3 nodes (the same count per node,
 *   one load-generator process per node: bench/idleLoad.ts);
 * - round: one job's round with N light clients (bench/lightClient.ts, zero training) that start
 *   spread over the nodes and are redirected to the owner (JOB_ELSEWHERE), vs the same on one node;
 * - failover: a job's owner SIGKILLed mid-job → the next round committed by another node, median of
 *   several trials (in-process TributaryClients that fail over by themselves).
 *
 * Run: `npm run bench -- --only cluster` (the `cluster` key of bench/results.json; not in the full
 * run). Needs redis-server and FERRETDB_BIN (or MONGODB_URI), like the cluster tests.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { cancelJob, createBuyerClient, createJob, getJob, getRounds } from '../client/buyer';
import { TributaryClient } from '../client/tributaryClient';
import { generateIdentity } from '../shared/identity/keyPair';
import type { JobSpecInput } from '../shared/schemas/jobSpec';
import { mongoUriForTests, type TestMongo } from '../test/support/ferretdb';
import { startRedis, type TestRedis } from '../test/support/redisServer';
import { separableDataset } from '../test/support/syntheticCsv';
import { generateFastIdentity } from './fastIdentity';
import { median, round, sleep } from './harness';
import { LightClient } from './lightClient';
import { type CoordinatorChild, openFileLimits, startCoordinatorProcess } from './scale.bench';

const MiB = 1024 * 1024;

/** Settings every node of a scenario gets (the load comes from one address: per-IP limits lifted). */
function nodeEnv(mongo: TestMongo, dbName: string, redisUrl?: string, leaseTtlMs = 10_000): NodeJS.ProcessEnv {
  return {
    BENCH_CONFIGURED_STORE: '1',
    MONGODB_URI: mongo.uri,
    TRIBUTARY_DB_NAME: dbName,
    TRIBUTARY_RATE_LIMIT_PER_IP: '10000000',
    TRIBUTARY_RATE_LIMIT_PER_IDENTITY: '10000000',
    TRIBUTARY_BACKEND: 'cpu',
    // Lease and commit events in each node's output: a failed step then says which node lost what, when.
    BENCH_LOG_LEVEL: 'info',
    ...(redisUrl ? { TRIBUTARY_REDIS_URL: redisUrl, TRIBUTARY_LEASE_TTL_MS: String(leaseTtlMs) } : {}),
  };
}

async function startNodes(count: number, env: NodeJS.ProcessEnv): Promise<CoordinatorChild[]> {
  const nodes: CoordinatorChild[] = [];
  try {
    for (let i = 0; i < count; i++) nodes.push(await startCoordinatorProcess(90_000, env));
  } catch (err) {
    await stopAll(nodes);
    throw err;
  }
  return nodes;
}

async function stopAll(nodes: CoordinatorChild[]): Promise<void> {
  await Promise.all(nodes.map((n) => n.stop().catch(() => undefined)));
}

interface Health {
  connectedClients?: number;
  cluster?: { node: string; leases: string[] };
}

async function health(url: string): Promise<Health | null> {
  try {
    return (await (await fetch(`${url}/v1/health`, { signal: AbortSignal.timeout(5_000) })).json()) as Health;
  } catch {
    return null;
  }
}

async function until<T>(fn: () => Promise<T | null | undefined | false>, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => null);
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

/** The node (among `nodes`) whose health lists a lease on `jobId`. */
async function ownerOf(nodes: CoordinatorChild[], jobId: string): Promise<CoordinatorChild | null> {
  for (const n of nodes) if ((await health(n.url))?.cluster?.leases.includes(jobId)) return n;
  return null;
}

// ---------------------------------------------------------------- idle clients

interface LoadReport {
  connected: number;
  failed: number;
  errors: string[];
  connectSeconds: number;
}

/** A bench/idleLoad.ts process holding `count` idle clients of `url`; stopped by its PID. */
function startLoad(url: string, count: number, deadline: number) {
  const child = spawn(
    process.execPath,
    ['-r', 'tsx/cjs', join(__dirname, 'idleLoad.ts'), url, String(count), String(deadline)],
    {
      cwd: join(__dirname, '..'),
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    },
  );
  let stderr = '';
  child.stderr?.on('data', (b: Buffer) => {
    if (stderr.length < 4096) stderr += b.toString();
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const reply = <T>(type: string, send?: object) =>
    new Promise<T>((resolve, reject) => {
      const onMessage = (m: { type?: string }) => {
        if (m?.type !== type) return;
        child.off('message', onMessage);
        resolve(m as T);
      };
      child.on('message', onMessage);
      child.once('exit', (code) => reject(new Error(`load generator exited (${code}): ${stderr.trim()}`)));
      if (send) child.send(send);
    });
  return {
    report: reply<LoadReport>('connected'),
    stillConnected: async () => (await reply<{ connected: number }>('count', { type: 'count' })).connected,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.send({ type: 'stop' });
        const done = await Promise.race([exited.then(() => true), sleep(10_000).then(() => false)]);
        if (!done) child.kill('SIGKILL');
      }
      await exited;
    },
  };
}

async function idleStep(nodeCount: number, perNode: number, env: NodeJS.ProcessEnv, budgetMs: number) {
  const deadline = Date.now() + budgetMs;
  const nodes = await startNodes(nodeCount, env);
  const loads: Array<ReturnType<typeof startLoad>> = [];
  try {
    const before = await Promise.all(nodes.map((n) => n.memory()));
    const started = performance.now();
    // One load-generator process per node, all at once, 32 handshakes in flight each.
    for (const n of nodes) loads.push(startLoad(n.url, perNode, deadline - 25_000));
    const reports = await Promise.all(loads.map((l) => l.report));
    const seconds = (performance.now() - started) / 1000;
    const connected = reports.reduce((s, r) => s + r.connected, 0);
    const after = await Promise.all(nodes.map((n) => n.memory()));
    const reported = await Promise.all(nodes.map(async (n) => (await health(n.url))?.connectedClients ?? null));
    // Held idle for a while (past the first socket.io pings), then counted again.
    await sleep(Math.max(0, Math.min(10_000, deadline - Date.now() - 10_000)));
    const still = (await Promise.all(loads.map((l) => l.stillConnected()))).reduce((s, n) => s + n, 0);
    return {
      nodes: nodeCount,
      target: nodeCount * perNode,
      connected,
      stillConnectedAfterHold: still,
      failed: reports.reduce((s, r) => s + r.failed, 0),
      errors: reports.flatMap((r) => r.errors).slice(0, 5),
      connectSeconds: round(seconds),
      connectsPerSecond: round(connected / Math.max(seconds, 1e-9)),
      healthConnectedClientsPerNode: reported,
      rssMiBPerNode: after.map((m) => round((m.vmRss ?? m.rss) / MiB)),
      rssKiBPerClient: round(
        after.reduce((s, m, i) => s + (m.vmRss ?? m.rss) - (before[i].vmRss ?? before[i].rss), 0) /
          1024 /
          Math.max(1, connected),
      ),
    };
  } finally {
    await Promise.all(loads.map((l) => l.stop()));
    await stopAll(nodes);
  }
}

// ---------------------------------------------------------------- one round with N light clients

const ROUND_JOB: Omit<JobSpecInput, 'rounds' | 'minClients' | 'maxClients'> = {
  name: 'bench-cluster-round',
  // 46 parameters: the round is all protocol (as in orchestration.bench.ts).
  model: { kind: 'builtin', name: 'mlp', hiddenUnits: [4] },
  input: { shape: [8], numClasses: 2 },
  fractionFit: 1,
  secureAggregation: 'none',
  roundDeadlineMs: 60_000,
  quorumTimeoutMs: 120_000,
  maxRoundRetries: 0,
  seed: 0,
};

export async function roundStep(nodeCount: number, clients: number, env: NodeJS.ProcessEnv, budgetMs: number) {
  const deadline = Date.now() + budgetMs;
  const left = () => Math.max(1_000, deadline - Date.now());
  const nodes = await startNodes(nodeCount, env);
  const conns: LightClient[] = [];
  /** Every connection opened, redirected ones included (their disconnect reasons explain a failed join). */
  const opened: LightClient[] = [];
  const measuredRounds = 3;
  try {
    const buyer = createBuyerClient({ url: nodes[0].url, identity: generateFastIdentity() });
    const jobId = (
      await createJob(buyer, {
        spec: { ...ROUND_JOB, rounds: 1 + measuredRounds, minClients: clients, maxClients: clients },
      })
    ).id;
    const owner = nodeCount === 1 ? nodes[0] : await until(() => ownerOf(nodes, jobId), left(), 'an owner');
    // Each client starts at node i mod n; one not at the owner is told JOB_ELSEWHERE and goes there.
    const joinStarted = performance.now();
    let redirected = 0;
    await Promise.all(
      Array.from({ length: clients }, async (_, i) => {
        const identity = generateFastIdentity();
        const first = nodes[i % nodeCount];
        let conn = new LightClient(first.url, identity);
        opened.push(conn);
        await conn.open(left());
        try {
          await conn.joinJob(jobId);
        } catch (err) {
          const e = err as { code?: string; details?: { ownerUrl?: string } };
          if (e.code !== 'JOB_ELSEWHERE' || e.details?.ownerUrl !== owner.url) throw err;
          conn.close();
          redirected++;
          conn = new LightClient(owner.url, identity);
          opened.push(conn);
          await conn.open(left());
          await conn.joinJob(jobId);
        }
        conns.push(conn);
      }),
    ).catch((err: unknown) => {
      const reasons = new Map<string, number>();
      for (const c of [...conns, ...opened]) for (const r of c.disconnects) reasons.set(r, (reasons.get(r) ?? 0) + 1);
      throw new Error(
        `${String((err as Error)?.message ?? err)}; disconnects seen: ${JSON.stringify(Object.fromEntries(reasons))}; nodes said: ${nodes.map((n) => n.stderrTail().slice(-600)).join(' | ')}`,
      );
    });
    const joinSeconds = (performance.now() - joinStarted) / 1000;
    const buyerAtOwner = createBuyerClient({ url: owner.url, identity: generateFastIdentity() });
    await until(
      async () => ['completed', 'failed'].includes((await getJob(buyerAtOwner, { jobId })).status),
      left(),
      'the job',
    );
    const job = await getJob(buyerAtOwner, { jobId });
    const rounds = (
      (await getRounds(buyerAtOwner, { jobId, limit: 20 })).rounds as Array<{
        round: number;
        status: string;
        metrics: Record<string, number>;
        startedAt: string;
        finishedAt: string;
      }>
    )
      .filter((r) => r.status === 'completed' && r.round > 1)
      .sort((a, b) => a.round - b.round);
    const overhead = rounds.map((r) => r.metrics.durationMs);
    const cycles = rounds.slice(1).map((r, i) => Date.parse(r.startedAt) - Date.parse(rounds[i].startedAt));
    return {
      nodes: nodeCount,
      clients,
      jobStatus: job.status,
      ...(job.status !== 'completed'
        ? {
            failureReason: job.failureReason ?? '',
            nodesSaid: nodes.map((n) => n.stderrTail().slice(-2_000)),
          }
        : {}),
      clientDisconnects: Object.fromEntries(
        opened.flatMap((c) => c.disconnects).reduce((m, r) => m.set(r, (m.get(r) ?? 0) + 1), new Map<string, number>()),
      ),
      redirectedAtJoin: redirected,
      connectAndJoinSeconds: round(joinSeconds),
      roundsMeasured: rounds.length,
      overheadMsMedian: round(median(overhead)),
      overheadMsMax: round(Math.max(...overhead)),
      roundStartToNextStartMsMedian: cycles.length > 0 ? round(median(cycles)) : null,
      clientErrors: conns.flatMap((c) => c.errors).slice(0, 5),
    };
  } finally {
    for (const c of conns) c.close();
    await stopAll(nodes);
  }
}

// ---------------------------------------------------------------- failover

async function failoverTrials(trials: number, env: NodeJS.ProcessEnv, leaseTtlMs: number, budgetMs: number) {
  const deadline = Date.now() + budgetMs;
  const left = () => Math.max(1_000, deadline - Date.now());
  const nodes = await startNodes(3, env);
  const results: Array<{ takeoverMs: number; nextRoundCommittedMs: number }> = [];
  const errors: string[] = [];
  try {
    for (let t = 0; t < trials && Date.now() < deadline - 30_000; t++) {
      const urls = nodes.map((n) => n.url);
      const buyer = createBuyerClient({ url: urls[0], identity: generateFastIdentity() });
      const jobId = (
        await createJob(buyer, {
          spec: {
            ...ROUND_JOB,
            name: `bench-failover-${t}`,
            rounds: 50,
            minClients: 3,
            maxClients: 3,
            maxRoundRetries: 3,
            localEpochs: 1,
            batchSize: 32,
          },
        })
      ).id;
      const clients = Array.from(
        { length: 3 },
        (_, i) =>
          new TributaryClient({
            url: urls[i % 3],
            alternativeUrls: urls,
            jobId,
            identity: generateIdentity(),
            dataset: separableDataset(64, 8, 50 + i),
            backend: 'cpu',
            allowPlaintext: true, // mode none
            maxReconnectDelayMs: 1_000,
          }),
      );
      const runs = clients.map((c) => c.run().catch((err: unknown) => errors.push(String(err))));
      try {
        const committed = async () => (await getJob(buyer, { jobId })).currentRound;
        await until(async () => (await committed()) >= 2, left(), 'round 2 before the kill');
        const owner = await until(() => ownerOf(nodes, jobId), left(), 'the owner');
        const before = await committed();
        const killedAt = performance.now();
        owner.proc.kill('SIGKILL');
        const survivors = nodes.filter((n) => n !== owner);
        const survivorBuyer = createBuyerClient({ url: survivors[0].url, identity: generateFastIdentity() });
        await until(() => ownerOf(survivors, jobId), left(), 'a takeover');
        const takeoverMs = performance.now() - killedAt;
        await until(
          async () => (await getJob(survivorBuyer, { jobId })).currentRound > before,
          left(),
          'the next round after the kill',
        );
        results.push({ takeoverMs: round(takeoverMs), nextRoundCommittedMs: round(performance.now() - killedAt) });
        // The job is done with: cancelled at a survivor (preempting the lease wherever it is).
        await cancelJob(survivorBuyer, { jobId, reason: 'bench trial over' }).catch(() => undefined);
        // Back to three nodes for the next trial.
        nodes.splice(nodes.indexOf(owner), 1, await startCoordinatorProcess(90_000, env));
      } finally {
        // close() ends a client's connection without settling run(): nothing waits on `runs` after it.
        for (const c of clients) c.close();
        void runs;
      }
    }
  } finally {
    await stopAll(nodes);
  }
  return {
    leaseTtlMs,
    trials: results,
    takeoverMsMedian: results.length ? round(median(results.map((r) => r.takeoverMs))) : null,
    nextRoundCommittedMsMedian: results.length ? round(median(results.map((r) => r.nextRoundCommittedMs))) : null,
    errors: errors.slice(0, 5),
  };
}

/**
 * Idle clients on 1 vs 3 nodes (`idlePerNode` each), one round with `activeClients` light clients on
 * 1 vs 3 nodes, and `failovers` SIGKILL failovers. Each part is bounded in time and stops every
 * process it started, by PID, also on failure.
 */
export async function clusterBench(
  options: {
    idlePerNode?: number;
    activeClients?: number;
    failovers?: number;
    /** @default all three */
    parts?: ReadonlyArray<'idle' | 'rounds' | 'failover'>;
  } = {},
) {
  const parts = new Set(options.parts ?? ['idle', 'rounds', 'failover']);
  const idlePerNode = options.idlePerNode ?? 10_000;
  const activeClients = options.activeClients ?? 1_000;
  const failovers = options.failovers ?? 5;
  const limits = openFileLimits();
  const mongo = await mongoUriForTests();
  if (!mongo) throw new Error('the cluster bench needs FerretDB (FERRETDB_BIN) or MONGODB_URI');
  let redis: TestRedis | undefined;
  try {
    redis = await startRedis();
    const part = async <T>(name: string, fn: () => Promise<T>): Promise<T | { error: string }> => {
      process.stderr.write(`  cluster: ${name}...\n`);
      try {
        return await fn();
      } catch (err) {
        return { error: String((err as Error)?.message ?? err) };
      }
    };
    // Each node and each load generator holds one descriptor per client: the open-file limit bounds both.
    const perNode = limits.soft !== null ? Math.min(idlePerNode, limits.soft - 1_024) : idlePerNode;
    const idle = !parts.has('idle')
      ? null
      : [
          await part('idle clients, 1 node', () => idleStep(1, perNode, nodeEnv(mongo, 'bench_idle1'), 80_000)),
          await part('idle clients, 3 nodes', () =>
            idleStep(3, perNode, nodeEnv(mongo, 'bench_idle3', redis!.url), 120_000),
          ),
        ];
    const rounds = !parts.has('rounds')
      ? null
      : [
          await part(`one round, ${activeClients} light clients, 1 node`, () =>
            roundStep(1, activeClients, nodeEnv(mongo, 'bench_round1'), 240_000),
          ),
          await part(`one round, ${activeClients} light clients, 3 nodes`, () =>
            roundStep(3, activeClients, nodeEnv(mongo, 'bench_round3', redis!.url), 240_000),
          ),
        ];
    const leaseTtlMs = 3_000;
    const failover = !parts.has('failover')
      ? null
      : await part(`failover x${failovers}`, () =>
          failoverTrials(failovers, nodeEnv(mongo, 'bench_failover', redis!.url, leaseTtlMs), leaseTtlMs, 150_000),
        );
    return {
      store: 'FerretDB (SQLite backend) shared by every node',
      redis: 'redis-server on 127.0.0.1',
      openFilesSoftLimit: limits.soft,
      idlePerNode: perNode,
      idle,
      rounds,
      failover,
    };
  } finally {
    await redis?.kill();
    await mongo.stop();
  }
}
