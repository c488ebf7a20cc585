import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getJob as getJobAction, getRounds } from '../../client/buyer';
import type { JobSpecInput } from '../../shared/schemas/jobSpec';
import type { TestMongo } from './ferretdb';
import { spawnTs, waitFor, type Spawned } from './processes';
import type { TestRedis } from './redisServer';
import { buyerClient, createJob } from './rest';
import { writeSeparableCsv } from './syntheticCsv';

/** One coordinator process of a test cluster. */
export interface ClusterNode {
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
 * Starts and tracks the processes of the multi-process cluster tests (issue 16): coordinator nodes on
 * one MongoDB/FerretDB and one redis-server, client processes each given every node's URL in its own
 * order, and any other process a test adds to `processes`. `stop()` kills exactly these PIDs.
 */
export class ClusterHarness {
  readonly processes: Spawned[] = [];
  readonly dir = mkdtempSync(join(tmpdir(), 'trib-cluster-'));
  private dbCount = 0;

  constructor(
    private readonly mongo: TestMongo,
    private readonly redis: TestRedis,
    /** Short leases so takeovers happen within seconds; the scan runs every half lease. */
    readonly leaseTtlMs: number,
  ) {}

  /** `count` coordinator processes on a database of their own, once each prints its URL; `env` adds to each node's (e.g. a chain's RPC URL and key). */
  async startNodes(count: number, env: NodeJS.ProcessEnv = {}): Promise<ClusterNode[]> {
    const dbName = `${this.mongo.dbName}_cluster${this.dbCount++}`;
    const started = Array.from({ length: count }, () =>
      this.track(
        spawnTs(
          'coordinator/cli.ts',
          ['--port', '0', '--json', '--log-level', 'info', '--backend', 'cpu', '--redis-url', this.redis.url],
          {
            MONGODB_URI: this.mongo.uri,
            TRIBUTARY_DB_NAME: dbName,
            TRIBUTARY_LEASE_TTL_MS: String(this.leaseTtlMs),
            ...env,
          },
        ),
      ),
    );
    return Promise.all(
      started.map(async (p) => {
        const line = await p.waitForLine((l) => l.includes('"url"'), 120_000);
        return { process: p, url: (JSON.parse(line) as { url: string }).url, dbName };
      }),
    );
  }

  /**
   * `count` client processes with their own synthetic data (`rows` rows, seed `seedBase + i`); client
   * i starts at node i and knows the others.
   */
  startClients(
    nodes: ClusterNode[],
    jobId: string,
    count: number,
    tag: string,
    { rows = 800, seedBase = 100 }: { rows?: number; seedBase?: number } = {},
  ): Spawned[] {
    return Array.from({ length: count }, (_, i) => {
      const data = join(this.dir, `${tag}-client${i}.csv`);
      writeSeparableCsv(data, rows, 8, seedBase + i);
      const urls = nodes.map((_, k) => nodes[(i + k) % nodes.length].url);
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

  /** SIGKILLs every process started here (resuming paused ones first) and waits for them. */
  async stop(): Promise<void> {
    for (const p of this.processes) {
      p.kill('SIGCONT');
      p.kill('SIGKILL');
    }
    await Promise.all(this.processes.map((p) => p.exit));
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

/**
 * The node whose /v1/health lists the job among its leases of `kind` (`leases`: the runner's;
 * `chainLeases`: the chain worker's), or null while none does. A paused or dead node does not answer.
 */
export async function ownerOf(
  nodes: ClusterNode[],
  jobId: string,
  kind: 'leases' | 'chainLeases' = 'leases',
): Promise<ClusterNode | null> {
  for (const node of nodes) {
    const health = await fetch(`${node.url}/v1/health`, { signal: AbortSignal.timeout(2_000) })
      .then((r) => r.json() as Promise<{ cluster?: { leases: string[]; chainLeases?: string[] } }>)
      .catch(() => null);
    if (health?.cluster?.[kind]?.includes(jobId)) return node;
  }
  return null;
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
