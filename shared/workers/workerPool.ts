import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { TributaryError } from '../errors';

/** Most threads a CPU-bound pool should start: the machine's parallelism (2 on the reference machine). */
export function maxThreads(): number {
  return Math.max(1, availableParallelism());
}

/** Throws CONFIG_INVALID (message prefixed with `label`) unless `threads` is an integer >= 1; returns it. */
export function checkThreads(threads: number, label: string): number {
  if (!Number.isInteger(threads) || threads < 1) {
    throw new TributaryError('CONFIG_INVALID', `${label} must be an integer >= 1; got ${String(threads)}`);
  }
  return threads;
}

/**
 * `count` items cut into at most `parts` contiguous slices of near-equal size (ceil(count / parts)
 * each, the last one shorter), in order: one slice per thread, so that a single caller's work uses
 * every thread and the results join back in input order. No slices for no items.
 */
export function contiguousSlices(count: number, parts: number): Array<{ start: number; end: number }> {
  if (count <= 0) return [];
  const size = Math.ceil(count / Math.min(parts, count));
  const slices: Array<{ start: number; end: number }> = [];
  for (let start = 0; start < count; start += size) slices.push({ start, end: Math.min(start + size, count) });
  return slices;
}

/**
 * Why a thread failed, as a sentence the pool's caller puts into its own error: the thread threw
 * (`error`), sent something that could not be deserialised (`messageerror`), exited (`exit`), or
 * answered a call with `{ id, error }` while `replyErrors` is 'fail-pool' (`reply`).
 */
export interface WorkerFailure {
  kind: 'error' | 'messageerror' | 'exit' | 'reply';
  /** e.g. "a mask thread exited with code 1": the pool's `label` then what happened. */
  why: string;
  cause?: unknown;
}

/** How a WorkerPool starts its threads, names them in errors, and turns failures into typed errors. */
export interface WorkerPoolOptions {
  /** JavaScript source each thread runs (`new Worker(source, { eval: true })`: no path, nothing to transpile). */
  source: string;
  /** Passed to every thread as `workerData` (structured-cloned). @default undefined */
  workerData?: unknown;
  /** Most threads: an integer >= 1 (checkThreads; callers check first, to name their own setting). */
  threads: number;
  /**
   * 'eager': every thread starts in the constructor. 'lazy': a thread starts at a call that finds
   * every started thread busy, up to `threads`. @default 'eager'
   */
  start?: 'eager' | 'lazy';
  /** How threads are named in failure sentences, e.g. "paillier worker". */
  label: string;
  /**
   * What a reply `{ id, error }` does: 'reject-call' rejects only that call with `callError(error)` and
   * the pool stays usable (the kernel refused an input); 'fail-pool' treats it like a dead thread.
   * @default 'fail-pool'
   */
  replyErrors?: 'reject-call' | 'fail-pool';
  /** The error a 'reject-call' reply rejects its call with. @default INTERNAL with "<label>: <error>" */
  callError?(message: string): Error;
  /** The error a failed thread's calls, and every later call, are rejected with. */
  failureError(failure: WorkerFailure): Error;
  /** The error calls get once the pool is closed (calls in flight at close, and later ones). */
  closedError(): Error;
}

interface Pending {
  resolve(reply: unknown): void;
  reject(err: unknown): void;
}

interface PoolThread {
  worker: Worker;
  pending: Map<number, Pending>;
}

/**
 * A bounded set of worker threads that run one kernel (a JavaScript source string) and answer calls
 * matched by id: a call posts `{ id, ...request }` (with an optional transfer list) and the kernel
 * answers `{ id, ...response }` or `{ id, error }`. Each call goes to the thread with the fewest calls
 * in flight (a tie goes to the first). A thread is ref'd while it has calls in flight, so the process
 * waits for the answers, and unref'd when idle, so a pool that is never closed does not keep the
 * process alive. A thread that errs, sends an unreadable message or exits fails its calls in flight,
 * and every later call, with `failureError` (the pool reports it through `usable`/`failure`; its
 * owner replaces it or falls back in-thread); the other threads' calls in flight still complete.
 * `close()` terminates every thread and fails the calls in flight with `closedError`.
 *
 * The kernels of paillier (workerKernel.ts), SecAgg+ (secaggWorkers.ts) and he
 * (encryptionWorkers.ts) run on it; each keeps its own maths, message shapes and error codes.
 */
export class WorkerPool<Request extends object, Response extends object> {
  private readonly threadsList: PoolThread[] = [];
  private nextId = 0;
  private failed: Error | undefined;
  private closed = false;

  constructor(private readonly options: WorkerPoolOptions) {
    checkThreads(options.threads, `${options.label}: threads`);
    if ((options.start ?? 'eager') === 'eager') {
      for (let i = 0; i < options.threads; i++) this.threadsList.push(this.spawn());
    }
  }

  /** Threads started so far (all of them for an eager pool). */
  get size(): number {
    return this.threadsList.length;
  }

  /** Whether the pool still takes calls (not closed, no thread failed). */
  get usable(): boolean {
    return !this.closed && !this.failed;
  }

  /** The error every call now fails with: the closed error or the first failure; undefined while usable. */
  get failure(): Error | undefined {
    return this.closed ? this.options.closedError() : this.failed;
  }

  /** The started worker threads, for tests that play a crash (terminate one). */
  get workers(): readonly Worker[] {
    return this.threadsList.map((t) => t.worker);
  }

  /** Sends `request` to the least busy thread; resolves with its response, matched by id. */
  call(request: Request, transfer: readonly ArrayBuffer[] = []): Promise<Response> {
    const refusal = this.failure;
    if (refusal) return Promise.reject(refusal);
    const all = this.threadsList;
    if (all.length < this.options.threads && all.every((t) => t.pending.size > 0)) all.push(this.spawn());
    const thread = all.reduce((a, b) => (b.pending.size < a.pending.size ? b : a));
    const id = this.nextId++;
    return new Promise<Response>((resolve, reject) => {
      thread.pending.set(id, { resolve: resolve as (reply: unknown) => void, reject });
      thread.worker.ref();
      thread.worker.postMessage({ ...request, id }, transfer as ArrayBuffer[]);
    });
  }

  /** Terminates every thread; calls in flight fail with `closedError`. Safe to call twice. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const closing = this.options.closedError();
    for (const thread of this.threadsList) this.rejectAll(thread, closing);
    await Promise.all(this.threadsList.map((t) => t.worker.terminate()));
  }

  private spawn(): PoolThread {
    const { source, workerData, label } = this.options;
    const worker = new Worker(source, { eval: true, workerData });
    const thread: PoolThread = { worker, pending: new Map() };
    worker.on('message', (reply: { id: number; error?: unknown }) => {
      const call = thread.pending.get(reply.id);
      if (!call) return;
      thread.pending.delete(reply.id);
      if (thread.pending.size === 0) worker.unref();
      if (reply.error === undefined) {
        const { id: _id, ...response } = reply;
        call.resolve(response);
      } else if (this.options.replyErrors === 'reject-call') {
        const message = String(reply.error);
        call.reject(this.options.callError?.(message) ?? new TributaryError('INTERNAL', `${label}: ${message}`));
      } else {
        // The kernel's failure may be one the other calls share (a bad key, a broken module): stop here.
        call.reject(this.fail(thread, { kind: 'reply', why: `${label} failed: ${String(reply.error)}` }));
      }
    });
    worker.on('error', (err) =>
      this.fail(thread, { kind: 'error', why: `${label} failed: ${err.message}`, cause: err }),
    );
    worker.on('messageerror', (err) =>
      this.fail(thread, { kind: 'messageerror', why: `${label} sent an unreadable message`, cause: err }),
    );
    worker.on('exit', (code) => {
      if (!this.closed) this.fail(thread, { kind: 'exit', why: `${label} exited with code ${code}` });
    });
    // After the listeners: adding a 'message' listener refs the worker again (Node 20), so an unref
    // before it left a thread that never got a call keeping the process alive.
    worker.unref();
    return thread;
  }

  /** Records the pool's first failure and fails the thread's calls in flight with it; returns it. */
  private fail(thread: PoolThread, failure: WorkerFailure): Error {
    this.failed ??= this.options.failureError(failure);
    this.rejectAll(thread, this.failed);
    return this.failed;
  }

  private rejectAll(thread: PoolThread, err: Error): void {
    for (const call of thread.pending.values()) call.reject(err);
    thread.pending.clear();
    thread.worker.unref();
  }
}
