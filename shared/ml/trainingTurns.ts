/**
 * One training at a time per process, each starting in an event-loop turn of its own.
 *
 * Why: training holds the thread for long synchronous stretches (it yields every 50 ms, so a short
 * training never does). Clients that share a process (the benchmarks, a provider running several)
 * and whose model downloads resolved together used to train back to back inside one microtask queue
 * or one setImmediate phase, and nothing else ran in between: at 10 in-process clients a SecAgg+
 * worker thread's replies waited ~250 ms for every training to end. A turn starts from a
 * setImmediate queued once the previous turn ended, so the event loop polls (sockets, worker
 * replies, timers) between any two trainings. Trainings share the one thread anyway, so serialising
 * them costs no throughput.
 */
let last: Promise<void> = Promise.resolve();

/** Waits for this process's previous training turn, then for the next event-loop turn; call the result when done. */
export async function takeTrainingTurn(): Promise<() => void> {
  const previous = last;
  let release!: () => void;
  last = new Promise<void>((resolve) => {
    release = resolve;
  });
  await previous;
  // Queued from inside the previous turn's callback, it runs in the next loop iteration, after a poll.
  await new Promise<void>((resolve) => setImmediate(resolve));
  return release;
}
