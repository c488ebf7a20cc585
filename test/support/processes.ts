import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';

export const REPO_ROOT = path.resolve(__dirname, '..', '..');

/** A child process we started, with its output captured line by line. */
export interface Spawned {
  child: ChildProcess;
  pid: number;
  lines: string[];
  stderr: string[];
  /** Resolves with the first stdout line matching `pred`, or rejects after `timeoutMs` or on exit. */
  waitForLine(pred: (line: string) => boolean, timeoutMs: number): Promise<string>;
  /** Resolves with the exit code (or signal name). */
  exit: Promise<number | string>;
  /** Sends `signal` to exactly this PID (if still running). */
  kill(signal?: NodeJS.Signals): void;
}

const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of running) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

/** Runs a TypeScript entry point of this repo in one node process (tsx registered in-process, so the PID is the program's). */
export function spawnTs(file: string, args: string[], env: NodeJS.ProcessEnv = {}): Spawned {
  const child = spawn(process.execPath, ['-r', 'tsx/cjs', path.join(REPO_ROOT, file), ...args], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  const lines: string[] = [];
  const stderr: string[] = [];
  const waiters = new Set<() => void>();
  let outBuf = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    outBuf += chunk.toString('utf8');
    let i: number;
    while ((i = outBuf.indexOf('\n')) >= 0) {
      lines.push(outBuf.slice(0, i));
      outBuf = outBuf.slice(i + 1);
    }
    for (const w of waiters) w();
  });
  let errBuf = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    errBuf += chunk.toString('utf8');
    let i: number;
    while ((i = errBuf.indexOf('\n')) >= 0) {
      stderr.push(errBuf.slice(0, i));
      if (stderr.length > 2000) stderr.shift();
      errBuf = errBuf.slice(i + 1);
    }
  });
  const exit = new Promise<number | string>((resolve) =>
    child.once('exit', (code, signal) => {
      running.delete(child);
      for (const w of waiters) w();
      resolve(code ?? signal ?? 'unknown');
    }),
  );
  return {
    child,
    pid: child.pid!,
    lines,
    stderr,
    exit,
    kill(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    },
    waitForLine(pred, timeoutMs) {
      return new Promise((resolve, reject) => {
        let seen = 0;
        const check = () => {
          for (; seen < lines.length; seen++) {
            if (pred(lines[seen])) {
              cleanup();
              return resolve(lines[seen]);
            }
          }
          if (child.exitCode !== null || child.signalCode !== null) {
            cleanup();
            reject(
              new Error(
                `${file} exited (${child.exitCode ?? child.signalCode}) before the expected line. stderr:\n${stderr.slice(-30).join('\n')}`,
              ),
            );
          }
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(
            new Error(
              `Timed out after ${timeoutMs} ms waiting for a line from ${file}. stderr:\n${stderr.slice(-30).join('\n')}`,
            ),
          );
        }, timeoutMs);
        const cleanup = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
  };
}

/** A port on 127.0.0.1 that was free a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Polls `fn` until it returns a truthy value or `timeoutMs` passes. */
export async function waitFor<T>(
  fn: () => Promise<T | null | undefined | false>,
  timeoutMs: number,
  what: string,
  everyMs = 200,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => null);
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}.`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
