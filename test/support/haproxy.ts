import { spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, waitFor } from './processes';

/** An HAProxy we started on 127.0.0.1 in front of a cluster's nodes; stopped by its PID. */
export interface TestHaproxy {
  /** The balancer's URL: what clients and buyers are given. */
  url: string;
  /** HAProxy's statistics page (CSV at `${statsUrl};csv`): each server's health-check state. */
  statsUrl: string;
  pid: number;
  /** The state HAProxy's health checks give each server now (`UP`, `DOWN`, ...), by server name. */
  serverStates(): Promise<Record<string, string>>;
  /** SIGKILLs exactly this HAProxy and waits for it to exit. */
  kill(): Promise<void>;
}

/** Why the HAProxy tests cannot run here, or null if haproxy is installed. */
export function noHaproxyReason(): string | null {
  const probe = spawnSync('haproxy', ['-v'], { encoding: 'utf8' });
  return probe.status === 0 ? null : 'haproxy is not installed (Debian: apt-get install haproxy; .ci/run does)';
}

/**
 * The configuration docs/cluster.md shows: HTTP mode (websocket upgrades pass through and become
 * tunnels), round robin (each new connection goes to the next node, which is what lets a client
 * behind one URL reach a job's owner by dialling again), health checks on /v1/health every 500 ms,
 * a node out after 2 failures and back after 2 passes, and a failed connect retried on another node.
 */
export function haproxyConfig(options: {
  port: number;
  statsPort: number;
  servers: ReadonlyArray<{ name: string; url: string }>;
}): string {
  const servers = options.servers.map((s) => `  server ${s.name} ${new URL(s.url).host} check`);
  return [
    'global',
    '  maxconn 4096',
    'defaults',
    '  mode http',
    '  timeout connect 2s',
    '  timeout client 120s',
    '  timeout server 120s',
    '  timeout tunnel 1h',
    '  retries 2',
    '  option redispatch',
    'frontend tributary',
    `  bind 127.0.0.1:${options.port}`,
    '  default_backend coordinators',
    'backend coordinators',
    '  balance roundrobin',
    '  option httpchk GET /v1/health',
    '  http-check expect status 200',
    '  default-server inter 500ms fall 2 rise 2',
    ...servers,
    'frontend stats',
    `  bind 127.0.0.1:${options.statsPort}`,
    '  stats enable',
    '  stats uri /stats',
    '',
  ].join('\n');
}

/** Starts HAProxy (foreground, config in `dir`) on a free port and resolves once every server passes its checks. */
export async function startHaproxy(
  dir: string,
  servers: ReadonlyArray<{ name: string; url: string }>,
  port?: number,
): Promise<TestHaproxy> {
  const listen = port ?? (await freePort());
  const statsPort = await freePort();
  const config = join(dir, `haproxy-${listen}.cfg`);
  writeFileSync(config, haproxyConfig({ port: listen, statsPort, servers }));
  const check = spawnSync('haproxy', ['-c', '-f', config], { encoding: 'utf8' });
  if (check.status !== 0) throw new Error(`haproxy refused its configuration:\n${check.stdout}${check.stderr}`);
  const child = spawn('haproxy', ['-db', '-f', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  for (const stream of [child.stdout!, child.stderr!]) {
    stream.on('data', (chunk: Buffer) => {
      output = (output + chunk.toString('utf8')).slice(-8_000);
    });
  }
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  process.once('exit', () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const statsUrl = `http://127.0.0.1:${statsPort}/stats`;
  const serverStates = async (): Promise<Record<string, string>> => {
    const csv = await fetch(`${statsUrl};csv`, { signal: AbortSignal.timeout(2_000) }).then((r) => r.text());
    const states: Record<string, string> = {};
    for (const line of csv.split('\n')) {
      const [backend, server, ...rest] = line.split(',');
      // Column 18 (status); rest starts at column 2.
      if (backend === 'coordinators' && server && server !== 'BACKEND') states[server] = rest[15] ?? '';
    }
    return states;
  };
  const haproxy: TestHaproxy = {
    url: `http://127.0.0.1:${listen}`,
    statsUrl,
    pid: child.pid!,
    serverStates,
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
  try {
    await waitFor(
      async () => {
        if (child.exitCode !== null) throw new Error(`haproxy exited (${child.exitCode}):\n${output}`);
        const states = await serverStates().catch(() => ({}) as Record<string, string>);
        return servers.every((s) => states[s.name] === 'UP') ? true : null;
      },
      30_000,
      'haproxy to see every node pass its health check',
      100,
    );
  } catch (err) {
    await haproxy.kill();
    throw new Error(`${(err as Error).message}\nhaproxy output:\n${output}`);
  }
  return haproxy;
}
