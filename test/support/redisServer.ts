import { spawn, spawnSync } from 'node:child_process';
import { freePort } from './processes';

/** A redis-server we started on 127.0.0.1, with no persistence; stopped by its PID. */
export interface TestRedis {
  url: string;
  port: number;
  pid: number;
  /** SIGKILLs exactly this server and waits for it to exit. */
  kill(): Promise<void>;
}

/** Why the Redis tests cannot run here, or null if redis-server is installed. */
export function noRedisReason(): string | null {
  const probe = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
  return probe.status === 0
    ? null
    : 'redis-server is not installed (Debian: apt-get install redis-server; .ci/run does)';
}

/** Starts redis-server on `port` (a free one if omitted) and resolves once it accepts connections. */
export async function startRedis(port?: number): Promise<TestRedis> {
  const p = port ?? (await freePort());
  const child = spawn(
    'redis-server',
    ['--port', String(p), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'yes'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  process.once('exit', () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  await new Promise<void>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`redis-server did not start on ${p}:\n${out}`)), 15_000);
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString('utf8');
      if (out.includes('Ready to accept connections')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`redis-server exited (${code}) before it was ready:\n${out}`));
    });
  });
  return {
    url: `redis://127.0.0.1:${p}`,
    port: p,
    pid: child.pid!,
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}
