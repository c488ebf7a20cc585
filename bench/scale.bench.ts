import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { io, type Socket } from 'socket.io-client';
import type { ProcessMemory } from './coordinatorProcess';
import { vmRssBytes } from './coordinatorProcess';
import { fastHandshakeAuth, generateFastIdentity } from './fastIdentity';
import { round, sleep, waitFor } from './harness';

/** One step: N idle authenticated socket.io clients held by a fresh coordinator process. */
export interface ScaleStep {
  target: number;
  /** Clients whose handshake the coordinator accepted. */
  connected: number;
  failed: number;
  /** First distinct connect errors, if any. */
  errors: string[];
  /** First connection attempt to the last accepted one, seconds. */
  connectSeconds: number;
  connectsPerSecond: number;
  /** What GET /v1/health reported once every client was up. */
  healthConnectedClients: number | null;
  /** Still connected after holding them idle for `holdSeconds` (past a socket.io ping interval). */
  stillConnectedAfterHold: number;
  holdSeconds: number;
  coordinator: {
    /** VmRSS of the coordinator process before connecting and with every client connected (after a full GC), MiB. */
    rssBeforeMiB: number;
    rssAfterMiB: number;
    heapUsedBeforeMiB: number;
    heapUsedAfterMiB: number;
    rssKiBPerClient: number;
    heapKiBPerClient: number;
  } | null;
  /** The load generator's (this process's) RSS growth per client, for comparison. */
  loadGeneratorRssKiBPerClient: number;
  /** Why the step stopped early, if it did. */
  stoppedEarly?: string;
}

const MiB = 1024 * 1024;

/** The soft and hard limits on open files of this process (a child inherits them). */
export function openFileLimits(): { soft: number | null; hard: number | null } {
  try {
    const m = /^Max open files\s+(\S+)\s+(\S+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    const n = (s: string | undefined) => (s === undefined || s === 'unlimited' ? null : Number(s));
    return { soft: n(m?.[1]), hard: n(m?.[2]) };
  } catch {
    return { soft: null, hard: null };
  }
}

let localGc: (() => void) | null | undefined;

/** A full GC of this process (exposes gc at run time; benchmarking only). */
function collectGarbage(): void {
  if (localGc === undefined) {
    try {
      setFlagsFromString('--expose-gc');
      localGc = runInNewContext('gc') as () => void;
    } catch {
      localGc = null;
    }
  }
  localGc?.();
  localGc?.();
}

function selfRss(): number {
  collectGarbage();
  return vmRssBytes('self') ?? process.memoryUsage().rss;
}

/** A coordinator child process: its URL, PID and a way to ask for its memory. */
export interface CoordinatorChild {
  proc: ChildProcess;
  url: string;
  pid: number;
  memory(timeoutMs?: number): Promise<ProcessMemory>;
  /** The last 8 KiB the child wrote to stderr (its error logs). */
  stderrTail(): string;
  stop(): Promise<void>;
}

/** Starts bench/coordinatorProcess.ts; `env` adds settings (TRIBUTARY_* variables, BENCH_CONFIGURED_STORE). */
export async function startCoordinatorProcess(
  timeoutMs = 60_000,
  env: NodeJS.ProcessEnv = {},
): Promise<CoordinatorChild> {
  const repoRoot = join(__dirname, '..');
  const proc = spawn(process.execPath, ['--expose-gc', '-r', 'tsx/cjs', join(__dirname, 'coordinatorProcess.ts')], {
    cwd: repoRoot,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  let stderr = '';
  proc.stderr?.on('data', (b: Buffer) => {
    stderr = (stderr + b.toString()).slice(-8192);
  });
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const stop = async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    proc.kill('SIGTERM');
    const done = await Promise.race([exited.then(() => true), sleep(15_000).then(() => false)]);
    if (!done && proc.pid) {
      process.kill(proc.pid, 'SIGKILL');
      await exited;
    }
  };
  try {
    const info = await new Promise<{ url: string; pid: number }>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`coordinator process not listening within ${timeoutMs} ms`)),
        timeoutMs,
      );
      const lines = createInterface({ input: proc.stdout! });
      lines.once('line', (line) => {
        clearTimeout(timer);
        lines.close();
        try {
          resolve(JSON.parse(line) as { url: string; pid: number });
        } catch (err) {
          reject(err);
        }
      });
      proc.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`coordinator process exited with ${code}: ${stderr.trim()}`));
      });
    });
    const memory = (ms = 30_000) =>
      new Promise<ProcessMemory>((resolve, reject) => {
        const timer = setTimeout(() => {
          proc.off('message', onMessage);
          reject(new Error('coordinator process did not report its memory'));
        }, ms);
        const onMessage = (m: { type?: string; memory?: ProcessMemory }) => {
          if (m?.type !== 'memory' || !m.memory) return;
          clearTimeout(timer);
          proc.off('message', onMessage);
          resolve(m.memory);
        };
        proc.on('message', onMessage);
        proc.send({ type: 'memory' });
      });
    return { proc, url: info.url, pid: proc.pid ?? info.pid, memory, stderrTail: () => stderr, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

async function healthCount(url: string): Promise<number | null> {
  try {
    const r = await fetch(`${url}/v1/health`, { signal: AbortSignal.timeout(10_000) });
    return ((await r.json()) as { connectedClients?: number }).connectedClients ?? null;
  } catch {
    return null;
  }
}

/** Opens `target` authenticated clients, at most `inFlight` handshakes at a time, until `deadline`. */
export async function connectAll(url: string, target: number, inFlight: number, deadline: number) {
  const sockets: Socket[] = [];
  const errors = new Map<string, number>();
  let connected = 0;
  let failed = 0;
  let lastConnectAt = 0;
  let next = 0;
  const started = performance.now();
  const openOne = () =>
    new Promise<void>((resolve) => {
      const socket = io(url, {
        transports: ['websocket'],
        forceNew: true,
        reconnection: false,
        timeout: 20_000,
        auth: fastHandshakeAuth(generateFastIdentity(), url),
      });
      sockets.push(socket);
      socket.once('connect', () => {
        connected++;
        lastConnectAt = performance.now();
        resolve();
      });
      socket.once('connect_error', (err: Error) => {
        failed++;
        errors.set(err.message, (errors.get(err.message) ?? 0) + 1);
        socket.close();
        resolve();
      });
    });
  const worker = async () => {
    while (next < target && Date.now() < deadline) {
      next++;
      await openOne();
    }
  };
  await Promise.all(Array.from({ length: Math.min(inFlight, target) }, worker));
  return {
    sockets,
    connected,
    failed,
    errors: [...errors].slice(0, 5).map(([m, n]) => `${n}x ${m}`),
    connectSeconds: (lastConnectAt - started) / 1000,
  };
}

async function step(target: number, stepBudgetMs: number, holdSeconds: number): Promise<ScaleStep> {
  const deadline = Date.now() + stepBudgetMs;
  let child: CoordinatorChild | null = null;
  let sockets: Socket[] = [];
  const result: ScaleStep = {
    target,
    connected: 0,
    failed: 0,
    errors: [],
    connectSeconds: NaN,
    connectsPerSecond: NaN,
    healthConnectedClients: null,
    stillConnectedAfterHold: 0,
    holdSeconds,
    coordinator: null,
    loadGeneratorRssKiBPerClient: NaN,
  };
  try {
    child = await startCoordinatorProcess();
    const before = await child.memory();
    const selfBefore = selfRss();
    // Leave part of the budget for the hold, the memory reading and the teardown.
    const connectDeadline = deadline - (holdSeconds + 15) * 1000;
    const c = await connectAll(child.url, target, 64, connectDeadline);
    sockets = c.sockets;
    Object.assign(result, {
      connected: c.connected,
      failed: c.failed,
      errors: c.errors,
      connectSeconds: round(c.connectSeconds),
      connectsPerSecond: round(c.connected / Math.max(c.connectSeconds, 1e-9)),
    });
    if (c.connected < target)
      result.stoppedEarly = `${c.connected} of ${target} connected before the step's deadline or with errors`;
    const url = child.url;
    await waitFor(async () => (await healthCount(url)) === c.connected, 10_000, 250);
    result.healthConnectedClients = await healthCount(url);
    const after = await child.memory();
    const selfAfter = selfRss();
    await sleep(Math.max(0, Math.min(holdSeconds * 1000, deadline - Date.now() - 15_000)));
    result.stillConnectedAfterHold = sockets.filter((s) => s.connected).length;
    const n = Math.max(1, c.connected);
    const rssBefore = before.vmRss ?? before.rss;
    const rssAfter = after.vmRss ?? after.rss;
    result.coordinator = {
      rssBeforeMiB: round(rssBefore / MiB),
      rssAfterMiB: round(rssAfter / MiB),
      heapUsedBeforeMiB: round(before.heapUsed / MiB),
      heapUsedAfterMiB: round(after.heapUsed / MiB),
      rssKiBPerClient: round((rssAfter - rssBefore) / 1024 / n),
      heapKiBPerClient: round((after.heapUsed - before.heapUsed) / 1024 / n),
    };
    result.loadGeneratorRssKiBPerClient = round((selfAfter - selfBefore) / 1024 / n);
  } catch (err) {
    result.stoppedEarly = (err as Error).message;
  } finally {
    for (const s of sockets) s.disconnect();
    if (child) {
      const url = child.url;
      await waitFor(async () => (await healthCount(url)) === 0, 15_000, 250);
      await child.stop();
    }
  }
  return result;
}

/**
 * How many idle, authenticated socket.io clients one coordinator holds: for each target, a fresh
 * coordinator process (bench/coordinatorProcess.ts) and that many clients from this process on
 * 127.0.0.1, each with its own Ed25519 key and a signed handshake. Reports how many connected, how
 * fast, and the coordinator's memory per client (VmRSS and V8 heap after a full GC). Every step is
 * bounded by `stepBudgetMs`, disconnects its clients and SIGTERMs its child by PID.
 */
export async function scaleBench(
  targets: readonly number[] = [1_000, 5_000, 10_000],
  stepBudgetMs = 90_000,
  holdSeconds = 12,
) {
  const limits = openFileLimits();
  const steps: ScaleStep[] = [];
  const skipped: string[] = [];
  for (const target of targets) {
    // One descriptor per client on each side of loopback, plus headroom for everything else.
    if (limits.soft !== null && target + 512 > limits.soft) {
      skipped.push(`${target}: needs about ${target + 512} open files; the soft limit (ulimit -n) is ${limits.soft}`);
      continue;
    }
    steps.push(await step(target, stepBudgetMs, holdSeconds));
  }
  return {
    openFilesSoftLimit: limits.soft,
    openFilesHardLimit: limits.hard,
    ephemeralPorts: ephemeralPortRange(),
    steps,
    skipped,
  };
}

function ephemeralPortRange(): string | null {
  try {
    return readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().replace(/\s+/, '-');
  } catch {
    return null;
  }
}
