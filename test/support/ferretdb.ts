import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

/** A MongoDB-compatible server a test can use, and how to give it back. */
export interface TestMongo {
  uri: string;
  /** A database name no other test run uses, so runs sharing one server cannot see each other. */
  dbName: string;
  stop(): Promise<void>;
}

const REPO_ROOT = path.resolve(__dirname, '..', '..');
const READY_TIMEOUT_MS = 15_000;
const STOP_GRACE_MS = 5_000;

/**
 * Where a FerretDB binary is: $FERRETDB_BIN if set (and then only there), else
 * <repo>/.tools/bin/ferretdb (what `.ci/ferretdb.sh` builds). Null when there is none.
 */
export function findFerretDbBinary(): string | null {
  // An explicit choice never falls back to another binary; FERRETDB_BIN=none turns FerretDB off.
  const candidates = process.env.FERRETDB_BIN
    ? [process.env.FERRETDB_BIN]
    : // A plain `go install` build panics at start (no version.txt): only the script's build is trusted.
      [path.join(REPO_ROOT, '.tools', 'bin', 'ferretdb')];
  for (const candidate of candidates) {
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      // not there or not executable: try the next one
    }
  }
  return null;
}

/** A port on 127.0.0.1 that was free a moment ago (the OS picks it; we release it for the child). */
async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.setTimeout(500);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(false));
  });
}

function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

function waitForExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (exited(child)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

/** Starts one FerretDB child and waits for its port, or throws with the tail of its output. */
async function startOnce(bin: string): Promise<{ uri: string; stop(): Promise<void> }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tributary-ferretdb-'));
  const port = await freePort();
  const child = spawn(
    bin,
    [
      '--handler=sqlite',
      `--sqlite-url=file:${dir}/`,
      `--listen-addr=127.0.0.1:${port}`,
      // "-" turns the debug HTTP listener off, so parallel instances never fight over 127.0.0.1:8088.
      '--debug-addr=-',
      // The default state dir is the working directory; keep state.json out of the repo.
      `--state-dir=${dir}`,
      '--telemetry=disable',
      '--log-level=warn',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );

  let output = '';
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString('utf8')).slice(-4_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  let spawnError: Error | undefined;
  child.once('error', (err) => {
    spawnError = err;
  });

  // If the test process dies without calling stop(), do not leave the child behind.
  const killOnExit = () => {
    if (!exited(child)) child.kill('SIGKILL');
  };
  process.once('exit', killOnExit);

  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      process.removeListener('exit', killOnExit);
      if (!exited(child)) {
        child.kill('SIGTERM');
        if (!(await waitForExit(child, STOP_GRACE_MS))) {
          child.kill('SIGKILL');
          await waitForExit(child, STOP_GRACE_MS);
        }
      }
      fs.rmSync(dir, { recursive: true, force: true });
    })();
    return stopped;
  };

  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (spawnError || exited(child)) break;
    // Still alive after the connect: the listener is ours, not another process that took the port.
    if ((await canConnect(port)) && !exited(child)) return { uri: `mongodb://127.0.0.1:${port}/`, stop };
    await new Promise((r) => setTimeout(r, 100));
  }
  const why = spawnError
    ? `could not be spawned (${spawnError.message})`
    : exited(child)
      ? `exited with ${child.exitCode ?? child.signalCode}`
      : `did not accept connections on 127.0.0.1:${port} within ${READY_TIMEOUT_MS} ms`;
  await stop();
  throw new Error(
    `FerretDB (${bin}) ${why}. Its output:\n${output.trim() || '(none)'}\n` +
      '(A binary from a plain `go install` panics about version.txt; .ci/ferretdb.sh builds a working one.)',
  );
}

/**
 * Starts a throwaway FerretDB (SQLite backend, fresh temp dir, free port on 127.0.0.1).
 * `stop()` kills exactly that child (SIGTERM, then SIGKILL) and removes its directory.
 */
export async function startFerretDb(): Promise<{ uri: string; stop(): Promise<void> }> {
  const bin = findFerretDbBinary();
  if (!bin) {
    throw new Error('No FerretDB binary: set FERRETDB_BIN or run .ci/ferretdb.sh to build .tools/bin/ferretdb.');
  }
  // The free port can be taken between our probe and the child's bind; a fresh port fixes that.
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await startOnce(bin);
    } catch (err) {
      lastError = err;
    }
  }
  throw lastError;
}

/** Why `mongoUriForTests` found nothing, for the skip banner. */
export const NO_MONGO_REASON =
  'MONGODB_URI is not set and no FerretDB binary was found ($FERRETDB_BIN, else .tools/bin/ferretdb); ' +
  'run .ci/ferretdb.sh to build one';

/**
 * Which MongoDB `mongoUriForTests` would use, decided without starting anything (so a test file can
 * choose between describe and describe.skip at load time): 'env', 'ferretdb', or null for none.
 */
export function mongoSourceForTests(): 'env' | 'ferretdb' | null {
  if (process.env.MONGODB_URI) return 'env';
  return findFerretDbBinary() ? 'ferretdb' : null;
}

/**
 * A MongoDB for tests: $MONGODB_URI if set (stop is a no-op), else a fresh FerretDB, else null.
 * Either way the database name is unique to this call.
 */
export async function mongoUriForTests(): Promise<TestMongo | null> {
  const dbName = `tributary_test_${Date.now().toString(36)}_${randomBytes(4).toString('hex')}`;
  const external = process.env.MONGODB_URI;
  if (external) return { uri: external, dbName, stop: async () => {} };
  if (!findFerretDbBinary()) return null;
  const ferret = await startFerretDb();
  return { uri: ferret.uri, dbName, stop: ferret.stop };
}
