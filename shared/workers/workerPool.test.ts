import { execFile } from 'node:child_process';
import path from 'node:path';
import { TributaryError } from '../errors';
import { checkThreads, contiguousSlices, WorkerPool, type WorkerPoolOptions } from './workerPool';

jest.setTimeout(60_000);

/**
 * A test kernel: `{ value, delayMs }` answers `{ doubled: 2·value, thread }` after delayMs;
 * `{ refuse: true }` answers `{ error }`; `{ exit: code }` ends the thread; `{ bytes }` (transferred)
 * answers their sum.
 */
const KERNEL = `
'use strict';
const { parentPort, threadId, workerData } = require('node:worker_threads');
parentPort.on('message', (m) => {
  if (m.exit !== undefined) process.exit(m.exit);
  if (m.refuse) return parentPort.postMessage({ id: m.id, error: 'refused ' + m.refuse });
  if (m.bytes) return parentPort.postMessage({ id: m.id, sum: m.bytes.reduce((a, b) => a + b, 0) });
  setTimeout(() => parentPort.postMessage({ id: m.id, doubled: 2 * m.value * (workerData?.factor ?? 1), thread: threadId }), m.delayMs ?? 0);
});
`;

type Request = { value?: number; delayMs?: number; refuse?: string; exit?: number; bytes?: Uint8Array };
type Response = { doubled?: number; thread?: number; sum?: number };

function options(overrides: Partial<WorkerPoolOptions> = {}): WorkerPoolOptions {
  return {
    source: KERNEL,
    threads: 2,
    label: 'test worker',
    failureError: ({ why, kind }) => new TributaryError('SECAGG_MASK_WORKER_FAILED', `${kind}: ${why}`),
    closedError: () => new TributaryError('CONFIG_INVALID', 'test pool is closed'),
    ...overrides,
  };
}

const pools: Array<WorkerPool<Request, Response>> = [];
function pool(overrides: Partial<WorkerPoolOptions> = {}): WorkerPool<Request, Response> {
  const p = new WorkerPool<Request, Response>(options(overrides));
  pools.push(p);
  return p;
}
afterAll(() => Promise.all(pools.map((p) => p.close())));

const settle = <T>(promise: Promise<T>) =>
  promise.then(
    (value) => ({ value }),
    (error: unknown) => ({ error }),
  );

describe('WorkerPool', () => {
  it('matches replies to calls by id when they come back out of order, across threads', async () => {
    const p = pool({ workerData: { factor: 3 } });
    expect(p.size).toBe(2);
    // Earlier calls wait longer, so each thread answers its calls in reverse order.
    const values = Array.from({ length: 24 }, (_, i) => i);
    const replies = await Promise.all(values.map((value) => p.call({ value, delayMs: (24 - value) * 5 })));
    expect(replies.map((r) => r.doubled)).toEqual(values.map((v) => 6 * v));
    // Least busy first: the calls were spread over both threads, and the id is not part of the answer.
    expect(new Set(replies.map((r) => r.thread)).size).toBe(2);
    expect(replies.every((r) => !('id' in r))).toBe(true);
  });

  it("rejects only that call with callError when replyErrors is 'reject-call', and stays usable", async () => {
    const p = pool({
      replyErrors: 'reject-call',
      callError: (message) => new TributaryError('VALIDATION_FAILED', `kernel said: ${message}`),
    });
    const [refused, ok] = await Promise.all([settle(p.call({ refuse: 'x' })), p.call({ value: 4 })]);
    expect(refused).toEqual({
      error: expect.objectContaining({ code: 'VALIDATION_FAILED', message: 'kernel said: refused x' }),
    });
    expect(ok.doubled).toBe(8);
    expect(p.usable).toBe(true);
    expect((await p.call({ value: 5 })).doubled).toBe(10);
  });

  it("fails the call (no hang) and the pool on an error reply when replyErrors is 'fail-pool'", async () => {
    const p = pool();
    expect(await settle(p.call({ refuse: 'y' }))).toEqual({
      error: expect.objectContaining({
        code: 'SECAGG_MASK_WORKER_FAILED',
        message: 'reply: test worker failed: refused y',
      }),
    });
    expect(p.usable).toBe(false);
    await expect(p.call({ value: 1 })).rejects.toMatchObject({ code: 'SECAGG_MASK_WORKER_FAILED' });
  });

  it('fails the dead thread’s calls in flight with the typed error, lets the other thread finish, and reports', async () => {
    const p = pool();
    // Least busy, ties to the first: thread 0 gets both slow calls, thread 1 the exit and the call
    // queued behind it, which dies with it.
    const slow = settle(p.call({ value: 7, delayMs: 300 }));
    const exit = settle(p.call({ exit: 3 }));
    const slow2 = settle(p.call({ value: 9, delayMs: 300 }));
    const behindExit = settle(p.call({ value: 8, delayMs: 1000 }));
    const failure = expect.objectContaining({
      code: 'SECAGG_MASK_WORKER_FAILED',
      message: 'exit: test worker exited with code 3',
    });
    expect(await exit).toEqual({ error: failure });
    expect(await behindExit).toEqual({ error: failure });
    expect(await slow).toEqual({ value: expect.objectContaining({ doubled: 14 }) });
    expect(await slow2).toEqual({ value: expect.objectContaining({ doubled: 18 }) });
    expect(p.usable).toBe(false);
    expect(p.failure).toEqual(failure);
    await expect(p.call({ value: 1 })).rejects.toEqual(failure);
  });

  it('reports a thread that throws while starting with kind "error" and its message', async () => {
    const p = pool({ source: "throw new Error('no kernel here')", threads: 1 });
    const result = await settle(p.call({ value: 1 }));
    expect(result).toEqual({
      error: expect.objectContaining({ message: 'error: test worker failed: no kernel here' }),
    });
  });

  it('close() terminates every thread, fails calls in flight with closedError, and refuses later ones', async () => {
    const p = pool();
    const exits = p.workers.map((w) => new Promise<number>((resolve) => w.once('exit', resolve)));
    const inFlight = settle(p.call({ value: 1, delayMs: 10_000 }));
    await p.close();
    expect(await Promise.all(exits)).toHaveLength(2);
    expect(p.workers.every((w) => w.threadId === -1)).toBe(true);
    expect(await inFlight).toEqual({
      error: expect.objectContaining({ code: 'CONFIG_INVALID', message: 'test pool is closed' }),
    });
    expect(p.usable).toBe(false);
    await expect(p.call({ value: 1 })).rejects.toMatchObject({ code: 'CONFIG_INVALID' });
    await p.close(); // twice is fine
  });

  it("'lazy' starts a thread only when every started one is busy, up to the bound", async () => {
    const p = pool({ start: 'lazy', threads: 2 });
    expect(p.size).toBe(0);
    await p.call({ value: 1 });
    expect(p.size).toBe(1);
    await p.call({ value: 1 }); // the one thread was idle again
    expect(p.size).toBe(1);
    await Promise.all([1, 2, 3, 4].map((value) => p.call({ value, delayMs: 50 })));
    expect(p.size).toBe(2);
  });

  it('transfers the buffers it is given (the caller is left with a detached one)', async () => {
    const p = pool({ threads: 1 });
    const bytes = Uint8Array.from([1, 2, 3, 250]);
    const reply = await p.call({ bytes }, [bytes.buffer]);
    expect(reply.sum).toBe(256);
    expect(bytes.byteLength).toBe(0);
  });

  it('checkThreads and the pool refuse anything but an integer >= 1 with CONFIG_INVALID', () => {
    for (const threads of [0, -1, 1.5, Number.NaN]) {
      expect(() => checkThreads(threads, 'test: threads')).toThrow(
        expect.objectContaining({
          code: 'CONFIG_INVALID',
          message: `test: threads must be an integer >= 1; got ${threads}`,
        }),
      );
    }
    expect(checkThreads(3, 'x')).toBe(3);
    // The pool checks too, before it starts anything.
    expect(() => new WorkerPool(options({ threads: 0 }))).toThrow(
      expect.objectContaining({
        code: 'CONFIG_INVALID',
        message: 'test worker: threads must be an integer >= 1; got 0',
      }),
    );
  });

  it('an idle pool that is never closed does not keep the process alive', async () => {
    // A child process makes one call and neither closes the pool nor exits: it must end by itself.
    const script = `
      const { WorkerPool } = require(${JSON.stringify(path.join(__dirname, 'workerPool.ts'))});
      const pool = new WorkerPool({ source: ${JSON.stringify(KERNEL)}, threads: 2, label: 'w',
        failureError: () => new Error('failed'), closedError: () => new Error('closed') });
      pool.call({ value: 21, delayMs: 200 }).then((r) => console.log('answer', r.doubled, pool.size));
    `;
    const { code, stdout } = await new Promise<{ code: number | null; stdout: string }>((resolve) => {
      const child = execFile(
        process.execPath,
        ['-r', 'tsx/cjs', '-e', script],
        { timeout: 45_000, cwd: path.join(__dirname, '..', '..') },
        (_err, out) => resolve({ code: child.exitCode, stdout: out }),
      );
    });
    // The answer arrived (the busy thread was ref'd) and then the process exited 0 on its own (not killed).
    expect(stdout.trim()).toBe('answer 42 2');
    expect(code).toBe(0);
  });
});

describe('contiguousSlices', () => {
  it('cuts items into at most one contiguous slice per part, covering each item once, in order', () => {
    expect(contiguousSlices(0, 4)).toEqual([]);
    expect(contiguousSlices(3, 1)).toEqual([{ start: 0, end: 3 }]);
    expect(contiguousSlices(2, 4)).toEqual([
      { start: 0, end: 1 },
      { start: 1, end: 2 },
    ]);
    expect(contiguousSlices(10, 4)).toEqual([
      { start: 0, end: 3 },
      { start: 3, end: 6 },
      { start: 6, end: 9 },
      { start: 9, end: 10 },
    ]);
    for (let count = 1; count <= 40; count++) {
      for (let parts = 1; parts <= 6; parts++) {
        const slices = contiguousSlices(count, parts);
        expect(slices.length).toBeLessThanOrEqual(parts);
        expect(slices[0].start).toBe(0);
        expect(slices.at(-1)?.end).toBe(count);
        slices.forEach((s, i) => {
          expect(s.end).toBeGreaterThan(s.start);
          if (i > 0) expect(s.start).toBe(slices[i - 1].end);
        });
      }
    }
  });
});
