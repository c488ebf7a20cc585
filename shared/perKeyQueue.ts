/**
 * Runs async operations one at a time per key, in arrival order; different keys run concurrently.
 * For count-then-write rules such as per-identity quotas: without it, a burst of requests from one
 * identity all count before any writes (on a store with real I/O) and all pass. Per process: several
 * coordinator processes on one store each hold their own queue.
 */
export class PerKeyQueue {
  private readonly tails = new Map<string, Promise<unknown>>();

  /** Runs `operation` after every earlier operation of `key` has settled; resolves or rejects with it. */
  run<T>(key: string, operation: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    const result = previous.then(operation, operation);
    const tail = result.then(
      () => undefined,
      () => undefined,
    );
    this.tails.set(key, tail);
    // The last operation of a key removes its entry, so idle keys hold no memory.
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return result;
  }

  /** Keys with an operation queued or running (for tests). */
  get size(): number {
    return this.tails.size;
  }
}
