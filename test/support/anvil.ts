/**
 * Starts the real anvil binary shipped by `@foundry-rs/anvil` (the platform package, e.g.
 * `@foundry-rs/anvil-linux-amd64`) on 127.0.0.1 with a free port, and stops exactly that PID.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

/** The deterministic dev accounts of anvil's default mnemonic ("test test ... junk"). */
export const ANVIL_ACCOUNTS = 10;

export interface AnvilOptions {
  /** Port to listen on. @default a free port chosen by the OS */
  port?: number;
  /** Extra anvil arguments (e.g. `['--state', file]`). @default [] */
  args?: string[];
  /** How long to wait for the RPC to answer. @default 15000 */
  readyTimeoutMs?: number;
}

export interface Anvil {
  pid: number;
  port: number;
  url: string;
  /** The extra arguments it was started with; pass them (with `port`) to `startAnvil` to restart it alike. */
  args: string[];
  child: ChildProcess;
  /** Last lines of stdout + stderr, for failure messages. */
  output: string[];
  /** SIGTERM to this PID, then SIGKILL after `graceMs`; resolves once it has exited. */
  stop(graceMs?: number): Promise<void>;
}

const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of running) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

/** Path of the anvil executable inside the platform package that npm installed. */
export function anvilBinary(): string {
  const arch = process.arch === 'x64' ? 'amd64' : process.arch;
  const pkg = `@foundry-rs/anvil-${process.platform}-${arch}`;
  let dir: string;
  try {
    dir = path.dirname(require.resolve(`${pkg}/package.json`));
  } catch {
    throw new Error(`${pkg} is not installed (it is an optional dependency of @foundry-rs/anvil); run npm ci`);
  }
  const bin = path.join(dir, 'bin', process.platform === 'win32' ? 'anvil.exe' : 'anvil');
  if (!fs.existsSync(bin)) throw new Error(`anvil binary not found at ${bin}`);
  return bin;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

async function rpcReady(url: string): Promise<boolean> {
  try {
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_chainId', params: [] }),
      signal: AbortSignal.timeout(1000),
    });
    if (!res.ok) return false;
    const body = (await res.json()) as { result?: string };
    return typeof body.result === 'string';
  } catch {
    return false;
  }
}

/** Spawns anvil and resolves once its JSON-RPC answers `eth_chainId`. */
export async function startAnvil(opts: AnvilOptions = {}): Promise<Anvil> {
  const port = opts.port ?? (await freePort());
  const args = opts.args ?? [];
  const readyTimeoutMs = opts.readyTimeoutMs ?? 15_000;
  const child = spawn(anvilBinary(), ['--host', '127.0.0.1', '--port', String(port), '--silent', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  const output: string[] = [];
  const collect = (chunk: Buffer) => {
    output.push(...chunk.toString('utf8').split('\n').filter(Boolean));
    if (output.length > 200) output.splice(0, output.length - 200);
  };
  child.stdout!.on('data', collect);
  child.stderr!.on('data', collect);
  const exited = new Promise<void>((resolve) =>
    child.once('exit', () => {
      running.delete(child);
      resolve();
    }),
  );
  let spawnError: Error | undefined;
  child.once('error', (e) => (spawnError = e));

  const url = `http://127.0.0.1:${port}`;
  const stop = async (graceMs = 3000): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }, graceMs);
    await exited;
    clearTimeout(timer);
  };

  const startedAt = Date.now();
  for (;;) {
    if (spawnError) throw spawnError;
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(
        `anvil exited (${child.exitCode ?? child.signalCode}) before its RPC was ready:\n${output.join('\n')}`,
      );
    }
    if (await rpcReady(url)) break;
    if (Date.now() - startedAt > readyTimeoutMs) {
      await stop(500);
      throw new Error(`anvil RPC at ${url} not ready after ${readyTimeoutMs} ms:\n${output.join('\n')}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { pid: child.pid!, port, url, args, child, output, stop };
}
