/**
 * The multi-process cluster fixture of the cluster e2e tests: coordinator processes joined into one
 * cluster on a shared MongoDB (FerretDB) database and one redis-server, client processes given the
 * nodes' URLs each in its own order, and the lease holders as each node's /v1/health reports them.
 */
import { join } from 'node:path';
import { spawnTs, type Spawned } from './processes';
import { writeSeparableCsv } from './syntheticCsv';

/** One coordinator process of a test cluster. */
export interface ClusterNode {
  process: Spawned;
  url: string;
}

export interface ClusterNodesOptions {
  count: number;
  mongoUri: string;
  /** A database of its own per cluster (one cluster's leases must not meet another's jobs). */
  dbName: string;
  redisUrl: string;
  leaseTtlMs: number;
  /** Further environment for every node (e.g. the chain's RPC URL and key). */
  env?: NodeJS.ProcessEnv;
  /** Every process started is pushed here, so the test's afterAll kills it. */
  track: Spawned[];
}

/** Starts `count` coordinator processes of one cluster; resolves once each listens. */
export async function startClusterNodes(options: ClusterNodesOptions): Promise<ClusterNode[]> {
  const started = Array.from({ length: options.count }, () => {
    const p = spawnTs(
      'coordinator/cli.ts',
      ['--port', '0', '--json', '--log-level', 'info', '--backend', 'cpu', '--redis-url', options.redisUrl],
      {
        MONGODB_URI: options.mongoUri,
        TRIBUTARY_DB_NAME: options.dbName,
        TRIBUTARY_LEASE_TTL_MS: String(options.leaseTtlMs),
        ...options.env,
      },
    );
    options.track.push(p);
    return p;
  });
  return Promise.all(
    started.map(async (p) => {
      const line = await p.waitForLine((l) => l.includes('"url"'), 120_000);
      return { process: p, url: (JSON.parse(line) as { url: string }).url };
    }),
  );
}

export interface ClientProcessesOptions {
  nodes: ClusterNode[];
  jobId: string;
  count: number;
  /** Names this run's data and key files in `dir`. */
  tag: string;
  dir: string;
  track: Spawned[];
  /** @default 800 */
  rows?: number;
  /** Data seed of client 0 (client i gets seedBase + i). @default 100 */
  seedBase?: number;
}

/** The key file client process `i` of run `tag` uses (its Ed25519 identity and, for paid jobs, its payout key). */
export function clientKeyFile(dir: string, tag: string, i: number): string {
  return join(dir, `${tag}-client${i}.key`);
}

/** Starts client processes (mode none: they consent to plaintext), each starting at another node and knowing the others. */
export function startClientProcesses(options: ClientProcessesOptions): Spawned[] {
  const { nodes, dir, tag } = options;
  return Array.from({ length: options.count }, (_, i) => {
    const data = join(dir, `${tag}-client${i}.csv`);
    writeSeparableCsv(data, options.rows ?? 800, 8, (options.seedBase ?? 100) + i);
    const urls = nodes.map((_, k) => nodes[(i + k) % nodes.length].url);
    const p = spawnTs('client/cli.ts', [
      '--coordinator',
      urls.join(','),
      '--job',
      options.jobId,
      '--data',
      data,
      '--key',
      clientKeyFile(dir, tag, i),
      '--json',
      '--backend',
      'cpu',
      '--allow-plaintext', // most jobs here run in mode none
    ]);
    options.track.push(p);
    return p;
  });
}

interface ClusterHealth {
  cluster?: { leases: string[]; chainLeases?: string[] };
}

/**
 * The node whose /v1/health lists the job among its leases of `kind` (`leases`: the runner's;
 * `chainLeases`: the chain worker's), or null while none does. A paused or dead node does not answer.
 */
export async function leaseHolder(
  nodes: ClusterNode[],
  jobId: string,
  kind: 'leases' | 'chainLeases' = 'leases',
): Promise<ClusterNode | null> {
  for (const node of nodes) {
    const health = await fetch(`${node.url}/v1/health`, { signal: AbortSignal.timeout(2_000) })
      .then((r) => r.json() as Promise<ClusterHealth>)
      .catch(() => null);
    if (health?.cluster?.[kind]?.includes(jobId)) return node;
  }
  return null;
}
