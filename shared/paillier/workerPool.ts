import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { TributaryError } from '../errors';
import { WORKER_KERNEL_SOURCE } from './workerKernel';

interface Pending {
  resolve(results: bigint[]): void;
  reject(err: unknown): void;
}

interface KernelWorker {
  worker: Worker;
  pending: Map<number, Pending>;
}

type KernelReply = { id: number; results: bigint[] } | { id: number; error: string };

/** Most threads a pool starts: the machine's parallelism (2 on the reference machine). */
export function maxThreads(): number {
  return Math.max(1, availableParallelism());
}

/** Throws CONFIG_INVALID unless `threads` is an integer >= 1; returns it clamped to maxThreads(). */
export function resolveThreads(threads: number): number {
  if (!Number.isInteger(threads) || threads < 1) {
    throw new TributaryError('CONFIG_INVALID', `paillier: threads must be an integer >= 1; got ${String(threads)}`);
  }
  return Math.min(threads, maxThreads());
}

/**
 * A fixed set of worker threads running the kernel of workerKernel.ts (encrypt or decrypt) with the
 * same workerData. `map` splits a list into one contiguous chunk per worker and keeps the order.
 *
 * Bounded and leak-free: at most maxThreads() workers; idle workers are unref'd, so a pool that is
 * never closed does not keep the process alive (while a `map` is in flight they are ref'd, so the
 * process waits for the answer); `close()` terminates every worker. A worker that dies fails its
 * pending calls with INTERNAL and makes the pool unusable (every later call fails the same way).
 */
export class KernelWorkerPool {
  private readonly workers: KernelWorker[];
  private nextId = 0;
  private failure: Error | undefined;
  private closed = false;

  constructor(workerData: Record<string, unknown>, threads: number) {
    const count = resolveThreads(threads);
    this.workers = Array.from({ length: count }, () => this.spawn(workerData));
  }

  /** Number of worker threads. */
  get size(): number {
    return this.workers.length;
  }

  private spawn(workerData: Record<string, unknown>): KernelWorker {
    const worker = new Worker(WORKER_KERNEL_SOURCE, { eval: true, workerData });
    const entry: KernelWorker = { worker, pending: new Map() };
    worker.unref();
    worker.on('message', (reply: KernelReply) => {
      const task = entry.pending.get(reply.id);
      if (!task) return;
      entry.pending.delete(reply.id);
      if (entry.pending.size === 0) worker.unref();
      if ('error' in reply) task.reject(new TributaryError('VALIDATION_FAILED', `paillier worker: ${reply.error}`));
      else task.resolve(reply.results);
    });
    const fail = (err: Error) => {
      this.failure ??= err;
      for (const task of entry.pending.values()) task.reject(err);
      entry.pending.clear();
    };
    worker.on('error', (err) =>
      fail(new TributaryError('INTERNAL', `paillier worker failed: ${err.message}`, { cause: err })),
    );
    worker.on('messageerror', (err) =>
      fail(new TributaryError('INTERNAL', 'paillier worker sent an unreadable message', { cause: err })),
    );
    worker.on('exit', (code) => {
      if (!this.closed) fail(new TributaryError('INTERNAL', `paillier worker exited with code ${code}`));
    });
    return entry;
  }

  private call(entry: KernelWorker, items: bigint[]): Promise<bigint[]> {
    const id = this.nextId++;
    return new Promise<bigint[]>((resolve, reject) => {
      entry.pending.set(id, { resolve, reject });
      entry.worker.ref();
      entry.worker.postMessage({ id, items });
    });
  }

  /** Runs the kernel on every item, in parallel across the workers; results in input order. */
  async map(items: readonly bigint[]): Promise<bigint[]> {
    if (this.closed) throw new TributaryError('INTERNAL', 'paillier: the worker pool is closed');
    if (this.failure) throw this.failure;
    if (items.length === 0) return [];
    const chunks = Math.min(this.workers.length, items.length);
    const size = Math.ceil(items.length / chunks);
    const parts = await Promise.all(
      Array.from({ length: chunks }, (_, k) => this.call(this.workers[k], items.slice(k * size, (k + 1) * size))),
    );
    return parts.flat();
  }

  /** Terminates every worker; pending calls fail. Safe to call twice. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const closing = new TributaryError('INTERNAL', 'paillier: the worker pool was closed');
    for (const entry of this.workers) {
      for (const task of entry.pending.values()) task.reject(closing);
      entry.pending.clear();
    }
    await Promise.all(this.workers.map((entry) => entry.worker.terminate()));
  }
}
