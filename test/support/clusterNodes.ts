import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getJob as getJobAction, getRounds } from '../../client/buyer';
import type { JobSpecInput } from '../../shared/schemas/jobSpec';
import type { Coordinator } from '../../coordinator/server';
import { mongoSourceForTests, mongoUriForTests, NO_MONGO_REASON, type TestMongo } from './ferretdb';
import { spawnTs, waitFor, type Spawned } from './processes';
import { noRedisReason, startRedis, type TestRedis } from './redisServer';
import { buyerClient, createJob } from './rest';
import { writeSeparableCsv } from './syntheticCsv';

/**
 * The cluster tests' preamble: `describe` when FerretDB (or MONGODB_URI) and redis-server are here, and
 * `more()` (another service's check: a reason it is missing, or null) passes; otherwise
 * `describe.skip` with a loud warning naming `what`, or, in CI, a failure of the whole file.
 */
export function describeWithCluster(what: string, more: () => string | null = () => null): jest.Describe {
  const skipReason = mongoSourceForTests() === null ? NO_MONGO_REASON : (noRedisReason() ?? more());
  if (!skipReason) return describe;
  if (process.env.CI === 'true') throw new Error(`${what} cannot run in CI: ${skipReason}`);
  console.warn(`\n*** SKIPPED: ${what} (${skipReason}) ***\n`);
  return describe.skip;
}

/** One coordinator process of a test cluster. */
export interface ClusterNode {
  /** Its node id (TRIBUTARY_NODE_ID, what /v1/health reports), unique in the harness. */
  name: string;
  process: Spawned;
  url: string;
  /** The database its cluster shares (a test may open it to look at the store). */
  dbName: string;
}

/** A round as GET /v1/jobs/:id/rounds shows it (the fields the cluster tests look at). */
export interface ClusterRoundView {
  round: number;
  attempt: number;
  status: string;
  participants: string[];
  modelHash?: string;
}

/**
 * Starts and tracks what the cluster tests (issue 16) run: one MongoDB/FerretDB and one redis-server
 * (`ClusterHarness.start`), coordinator nodes on them (processes, or in this process where a test
 * reaches into a node's store or directory), client processes each given every node's URL in its own
 * order (or only a balancer's), and any other process a test adds to `processes`. `stop()` kills
 * exactly these PIDs, closes the in-process nodes, then stops Redis and the database.
 */
export class ClusterHarness {
  readonly processes: Spawned[] = [];
  readonly dir = mkdtempSync(join(tmpdir(), 'trib-cluster-'));
  private readonly inProcess = new Set<Coordinator>();
  private dbCount = 0;
  private nodeCount = 0;

  private constructor(
    /** The database every node of the harness uses (each cluster in a database of its own). */
    readonly mongo: TestMongo,
    private currentRedis: TestRedis,
    /** Short leases so takeovers happen within seconds; the scan runs every half lease. */
    readonly leaseTtlMs: number,
  ) {}

  /** Starts the database (FerretDB, or MONGODB_URI's) and a redis-server for a harness of leases of `leaseTtlMs`. */
  static async start(leaseTtlMs: number): Promise<ClusterHarness> {
    const mongo = await mongoUriForTests();
    if (!mongo) throw new Error(NO_MONGO_REASON);
    try {
      return new ClusterHarness(mongo, await startRedis(), leaseTtlMs);
    } catch (err) {
      await mongo.stop();
      throw err;
    }
  }

  /** The cluster's redis-server (a new one, on the same port, after restartRedis). */
  get redis(): TestRedis {
    return this.currentRedis;
  }

  /** Kills the redis-server (by PID); restartRedis brings one back. */
  stopRedis(): Promise<void> {
    return this.currentRedis.kill();
  }

  /** Starts a redis-server on the stopped one's port (so the URL stays): the nodes reconnect to it. */
  async restartRedis(): Promise<void> {
    this.currentRedis = await startRedis(this.currentRedis.port);
  }

  /**
   * `count` coordinator processes on a database of their own, once each prints its URL; `env` adds to
   * each node's (e.g. a chain's RPC URL and key, or a balancer's URL), or is given node i's env.
   */
  async startNodes(
    count: number,
    env: NodeJS.ProcessEnv | ((i: number) => NodeJS.ProcessEnv) = {},
  ): Promise<ClusterNode[]> {
    const dbName = `${this.mongo.dbName}_cluster${this.dbCount++}`;
    const started = Array.from({ length: count }, (_, i) => {
      const name = `n${++this.nodeCount}`;
      const process = this.track(
        spawnTs(
          'coordinator/cli.ts',
          ['--port', '0', '--json', '--log-level', 'info', '--backend', 'cpu', '--redis-url', this.redis.url],
          {
            MONGODB_URI: this.mongo.uri,
            TRIBUTARY_DB_NAME: dbName,
            TRIBUTARY_LEASE_TTL_MS: String(this.leaseTtlMs),
            TRIBUTARY_NODE_ID: name,
            ...(typeof env === 'function' ? env(i) : env),
          },
        ),
      );
      return { name, process };
    });
    return Promise.all(
      started.map(async ({ name, process }) => {
        const line = await process.waitForLine((l) => l.includes('"url"'), 120_000);
        return { name, process, url: (JSON.parse(line) as { url: string }).url, dbName };
      }),
    );
  }

  /**
   * `count` coordinators in this process, one after the other, on a database of their own, for tests
   * that look into a node (its store, directory, job manager). `redis: false` leaves the shared Redis
   * out (a control run); `publicUrls` are the URLs every node also answers to (a balancer's).
   */
  async startInProcessNodes(
    count: number,
    { redis = true, publicUrls = [] }: { redis?: boolean; publicUrls?: string[] } = {},
  ): Promise<Coordinator[]> {
    // Loaded here: the process-based tests need not load the coordinator into jest.
    const { startCoordinator } = await import('../../coordinator/server');
    const dbName = `${this.mongo.dbName}_cluster${this.dbCount++}`;
    const nodes: Coordinator[] = [];
    for (let i = 0; i < count; i++) {
      const node = await startCoordinator({
        port: 0,
        mongodbUri: this.mongo.uri,
        dbName,
        cluster: true,
        ...(redis ? { redisUrl: this.redis.url } : {}),
        publicUrls,
        leaseTtlMs: this.leaseTtlMs,
        backend: 'cpu',
        logLevel: 'silent',
      });
      this.inProcess.add(node);
      nodes.push(node);
    }
    return nodes;
  }

  /** Closes in-process nodes that startInProcessNodes started, in order. */
  async closeNodes(nodes: readonly Coordinator[]): Promise<void> {
    for (const node of nodes) {
      this.inProcess.delete(node);
      await node.close();
    }
  }

  /**
   * `count` client processes with their own synthetic data (`rows` rows, seed `seedBase + i`); client
   * i starts at node i and knows the others, or, given `via` (a load balancer's URL), knows only that.
   */
  startClients(
    nodes: ClusterNode[],
    jobId: string,
    count: number,
    tag: string,
    { rows = 800, seedBase = 100, via }: { rows?: number; seedBase?: number; via?: string } = {},
  ): Spawned[] {
    return Array.from({ length: count }, (_, i) => {
      const data = join(this.dir, `${tag}-client${i}.csv`);
      writeSeparableCsv(data, rows, 8, seedBase + i);
      const urls = via ? [via] : nodes.map((_, k) => nodes[(i + k) % nodes.length].url);
      return this.track(
        spawnTs('client/cli.ts', [
          '--coordinator',
          urls.join(','),
          '--job',
          jobId,
          '--data',
          data,
          '--key',
          this.clientKeyFile(tag, i),
          '--json',
          '--backend',
          'cpu',
          '--allow-plaintext', // most jobs here run in mode none
        ]),
      );
    });
  }

  /** The key file of client `i` of run `tag` (its Ed25519 identity and, for paid jobs, its payout key). */
  clientKeyFile(tag: string, i: number): string {
    return join(this.dir, `${tag}-client${i}.key`);
  }

  /** Adds a process a test started itself, so that stop() kills it too. */
  track(p: Spawned): Spawned {
    this.processes.push(p);
    return p;
  }

  /**
   * SIGKILLs every process started here (resuming paused ones first) and waits for them, closes the
   * in-process nodes, then kills the redis-server and stops the database.
   */
  async stop(): Promise<void> {
    for (const p of this.processes) {
      p.kill('SIGCONT');
      p.kill('SIGKILL');
    }
    await Promise.all(this.processes.map((p) => p.exit));
    await this.closeNodes([...this.inProcess]).catch(() => undefined);
    await this.currentRedis.kill();
    await this.mongo.stop();
  }
}

/** The cluster tests' job: a small MLP on 8 features for three clients (mode none), with `overrides`. */
export function clusterJobSpec(name: string, rounds: number, overrides: Partial<JobSpecInput> = {}): JobSpecInput {
  return {
    name,
    model: { kind: 'builtin', name: 'mlp', hiddenUnits: [16] },
    input: { shape: [8], numClasses: 2 },
    rounds,
    minClients: 3,
    secureAggregation: 'none',
    localEpochs: 2,
    batchSize: 32,
    learningRate: 0.05,
    roundDeadlineMs: 120_000,
    quorumTimeoutMs: 240_000,
    seed: 7,
    ...overrides,
  } as JobSpecInput;
}

/** Creates `clusterJobSpec(name, rounds, overrides)` at `url`; its id. */
export function createClusterJob(
  url: string,
  name: string,
  rounds: number,
  overrides: Partial<JobSpecInput> = {},
): Promise<string> {
  return createJob(url, clusterJobSpec(name, rounds, overrides));
}

/** Waits (at most `ms`) until the job, as the node at `url` serves it, is no longer running; its view. */
export function finished(url: string, jobId: string, what: string, ms = 400_000) {
  return waitFor(
    async () => {
      const j = await getJobAction(buyerClient(url), { jobId });
      return j.status !== 'running' ? j : null;
    },
    ms,
    what,
  );
}

/** A process's exit code, or a failure with its last output if it has not exited within `ms`. */
export async function exitOf(p: Spawned, ms = 120_000): Promise<number | string> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new Error(
            `process ${p.pid} still running:\n${p.stderr.slice(-20).join('\n')}\n${p.lines.slice(-10).join('\n')}`,
          ),
        ),
      ms,
    );
  });
  try {
    return await Promise.race([p.exit, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** What GET /v1/health says about the node's cluster (the fields the tests look at). */
export interface ClusterHealth {
  status: string;
  cluster?: { node: string; leases: string[]; chainLeases?: string[] };
}

/** The node's (or a balancer's) /v1/health, or null if it does not answer within 2 s. */
export function healthOf(url: string): Promise<ClusterHealth | null> {
  return fetch(`${url}/v1/health`, { signal: AbortSignal.timeout(2_000) })
    .then((r) => r.json() as Promise<ClusterHealth>)
    .catch(() => null);
}

/**
 * Every node whose /v1/health lists the job among its leases of `kind` (`leases`: the runner's;
 * `chainLeases`: the chain worker's), in order. A paused or dead node does not answer.
 */
export async function ownersOf<Node extends { url: string }>(
  nodes: readonly Node[],
  jobId: string,
  kind: 'leases' | 'chainLeases' = 'leases',
): Promise<Node[]> {
  const reports = await Promise.all(nodes.map(async (node) => ({ node, health: await healthOf(node.url) })));
  return reports.filter((r) => r.health?.cluster?.[kind]?.includes(jobId)).map((r) => r.node);
}

/** The first node whose /v1/health lists the job among its leases of `kind`, or null while none does. */
export async function ownerOf<Node extends { url: string }>(
  nodes: readonly Node[],
  jobId: string,
  kind: 'leases' | 'chainLeases' = 'leases',
): Promise<Node | null> {
  return (await ownersOf(nodes, jobId, kind))[0] ?? null;
}

/** How many rounds this node logged as committed. */
export function committedLines(node: ClusterNode): number {
  return node.process.stderr.filter((l) => l.includes('round committed')).length;
}

/** Checks rounds 1..`rounds` each have exactly one completed record with three participants; returns them. */
export async function expectEachRoundCommittedOnce(
  url: string,
  jobId: string,
  rounds: number,
): Promise<ClusterRoundView[]> {
  const history = (await getRounds(buyerClient(url), { jobId, limit: 20 })).rounds as ClusterRoundView[];
  const completed = history.filter((r) => r.status === 'completed');
  expect(completed.map((r) => r.round)).toEqual(Array.from({ length: rounds }, (_, i) => i + 1));
  for (const r of completed) expect(r.participants).toHaveLength(3);
  return completed;
}
