/**
 * A coordinator in its own process for the scale benchmark, so its memory is measured apart from the
 * load generator's. Started by bench/scale.bench.ts with `node --expose-gc -r tsx/cjs` and an IPC
 * channel; prints one JSON line {url, port, pid} on stdout once listening (like `tributary coordinator
 * --json`), answers {type: 'memory'} with its memory after a full GC, and stops on SIGTERM (or when
 * its parent goes away).
 */
import { readFileSync } from 'node:fs';
import { startCoordinator } from '../coordinator/server';
import { MemoryStore } from '../coordinator/store/memoryStore';

/** This process's memory, in bytes, after a full garbage collection when gc is exposed. */
export interface ProcessMemory {
  rss: number;
  /** VmRSS from /proc/self/status (what the kernel charges), if readable. */
  vmRss: number | null;
  heapUsed: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
  gcRan: boolean;
}

export function vmRssBytes(pid: number | 'self'): number | null {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

function memory(): ProcessMemory {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc) {
    gc();
    gc();
  }
  const m = process.memoryUsage();
  return {
    rss: m.rss,
    vmRss: vmRssBytes('self'),
    heapUsed: m.heapUsed,
    heapTotal: m.heapTotal,
    external: m.external,
    arrayBuffers: m.arrayBuffers,
    gcRan: !!gc,
  };
}

async function main(): Promise<void> {
  // The embedded store whatever MONGODB_URI says (idle clients never touch it anyway), unless the
  // cluster bench asks for the configured one (MONGODB_URI: leases and commits in the shared store).
  const store = process.env.BENCH_CONFIGURED_STORE === '1' ? undefined : new MemoryStore();
  // Tens of thousands of connections from one address: the bench lifts the per-IP connection limit.
  const coordinator = await startCoordinator(
    {
      host: '127.0.0.1',
      port: 0,
      // The cluster bench asks for 'info': lease taken/lost and round commits, a few lines per round.
      logLevel: process.env.BENCH_LOG_LEVEL === 'info' ? 'info' : 'error',
      socketConnectionsPerIpPerMinute: 10_000_000,
    },
    store ? { store } : {},
  );
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    coordinator.close().then(
      () => (store ? store.close() : Promise.resolve()).then(() => process.exit(0)),
      () => process.exit(1),
    );
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  // Never outlive the benchmark: the IPC channel closes when the parent exits.
  process.on('disconnect', stop);
  process.on('message', (msg: { type?: string }) => {
    if (msg?.type === 'memory') process.send?.({ type: 'memory', memory: memory() });
  });
  process.stdout.write(
    `${JSON.stringify({
      url: coordinator.url,
      port: coordinator.port,
      pid: process.pid,
      backend: coordinator.backend,
      store: coordinator.store.kind,
    })}\n`,
  );
}

if (require.main === module) {
  main().catch((err) => {
    process.stderr.write(`coordinator process failed: ${String((err as Error)?.stack ?? err)}\n`);
    process.exit(2);
  });
}
