import { TributaryError } from '../errors';
import { checkThreads, contiguousSlices, maxThreads, WorkerPool } from '../workers/workerPool';
import { WORKER_KERNEL_SOURCE } from './workerKernel';

export { maxThreads };

/** Throws CONFIG_INVALID unless `threads` is an integer >= 1; returns it clamped to maxThreads(). */
export function resolveThreads(threads: number): number {
  return Math.min(checkThreads(threads, 'paillier: threads'), maxThreads());
}

/**
 * A fixed set of worker threads running the kernel of workerKernel.ts (encrypt or decrypt) with the
 * same workerData, on the generic WorkerPool. `map` splits a list into one contiguous chunk per worker
 * and keeps the order.
 *
 * Bounded and leak-free: at most maxThreads() workers; idle workers are unref'd, so a pool that is
 * never closed does not keep the process alive (while a `map` is in flight they are ref'd, so the
 * process waits for the answer); `close()` terminates every worker. A kernel that refuses an input
 * fails that call with VALIDATION_FAILED. A worker that dies fails its pending calls with INTERNAL and
 * makes the pool unusable (every later call fails the same way).
 */
export class KernelWorkerPool {
  private readonly pool: WorkerPool<{ items: bigint[] }, { results: bigint[] }>;

  constructor(workerData: Record<string, unknown>, threads: number) {
    this.pool = new WorkerPool({
      source: WORKER_KERNEL_SOURCE,
      workerData,
      threads: resolveThreads(threads),
      label: 'paillier worker',
      replyErrors: 'reject-call',
      callError: (message) => new TributaryError('VALIDATION_FAILED', `paillier worker: ${message}`),
      failureError: ({ why, cause }) => new TributaryError('INTERNAL', why, { cause }),
      closedError: () => new TributaryError('INTERNAL', 'paillier: the worker pool is closed'),
    });
  }

  /** Number of worker threads. */
  get size(): number {
    return this.pool.size;
  }

  /** Runs the kernel on every item, in parallel across the workers; results in input order. */
  async map(items: readonly bigint[]): Promise<bigint[]> {
    const refusal = this.pool.failure;
    if (refusal) throw refusal;
    // Posted together, so each chunk goes to its own idle worker.
    const parts = await Promise.all(
      contiguousSlices(items.length, this.pool.size).map(({ start, end }) =>
        this.pool.call({ items: items.slice(start, end) }),
      ),
    );
    return parts.flatMap((part) => part.results);
  }

  /** Terminates every worker; pending calls fail. Safe to call twice. */
  close(): Promise<void> {
    return this.pool.close();
  }
}
