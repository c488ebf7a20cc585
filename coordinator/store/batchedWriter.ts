/** How `BatchedWriter` groups and bounds its writes. */
export interface BatchedWriterOptions {
  /** Most items one write carries. @default 250 */
  maxBatch?: number;
  /** Writes in flight at once; items queued meanwhile go out together in the next one. @default 1 */
  concurrency?: number;
}

/**
 * Coalesces many small writes into few bulk writes, with a bound on how many are in flight.
 *
 * `submit(item)` resolves once the write that carried the item succeeded and rejects with that
 * write's error otherwise: every item is answered, none is dropped. With concurrency 1 the first
 * item goes out alone at once and the items that arrive while it is in flight go out together next,
 * so a burst of N submissions costs about log-many round trips at low load and N / maxBatch at high
 * load, and the store never sees more than `concurrency` of these writes at a time (SQLite, under
 * FerretDB, has one write lock for the whole database: more concurrent writers only collide).
 * `flush` must be safe to repeat, since a retry resends a whole batch.
 */
export class BatchedWriter<T> {
  private readonly queue: Array<{ item: T; resolve: () => void; reject: (err: unknown) => void }> = [];
  private inFlight = 0;
  private readonly maxBatch: number;
  private readonly concurrency: number;

  constructor(
    private readonly flush: (items: T[]) => Promise<void>,
    options: BatchedWriterOptions = {},
  ) {
    this.maxBatch = options.maxBatch ?? 250;
    this.concurrency = options.concurrency ?? 1;
    if (!Number.isInteger(this.maxBatch) || this.maxBatch < 1) throw new RangeError('maxBatch must be an integer >= 1');
    if (!Number.isInteger(this.concurrency) || this.concurrency < 1)
      throw new RangeError('concurrency must be an integer >= 1');
  }

  /** Queues one item; settles with the write that carries it. */
  submit(item: T): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      this.pump();
    });
  }

  /** Items waiting for a write (not those in flight). */
  get pending(): number {
    return this.queue.length;
  }

  private pump(): void {
    while (this.inFlight < this.concurrency && this.queue.length > 0) {
      const batch = this.queue.splice(0, this.maxBatch);
      this.inFlight++;
      // A flush that throws synchronously must reject its batch too, not the caller of submit.
      Promise.resolve()
        .then(() => this.flush(batch.map((b) => b.item)))
        .then(
          () => {
            for (const b of batch) b.resolve();
          },
          (err: unknown) => {
            for (const b of batch) b.reject(err);
          },
        )
        .finally(() => {
          this.inFlight--;
          this.pump();
        });
    }
  }
}
