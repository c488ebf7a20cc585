import { Worker } from 'node:worker_threads';
import { takeTrainingTurn } from './trainingTurns';

function busy(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

describe('takeTrainingTurn', () => {
  it('lets a worker reply in between two turns asked for in the same tick', async () => {
    const worker = new Worker(
      "require('node:worker_threads').parentPort.on('message', (m) => require('node:worker_threads').parentPort.postMessage(m))",
      {
        eval: true,
      },
    );
    try {
      await new Promise((resolve) => worker.once('online', resolve));
      const events: string[] = [];
      worker.on('message', () => events.push('worker reply'));
      const first = takeTrainingTurn();
      const second = takeTrainingTurn();
      const releaseFirst = await first;
      events.push('first trains');
      worker.postMessage(1);
      busy(100); // the worker answers long before this "training" ends
      releaseFirst();
      const releaseSecond = await second;
      events.push('second trains');
      releaseSecond();
      // Without turns both trainings would run in one setImmediate phase, before the reply is taken.
      expect(events).toEqual(['first trains', 'worker reply', 'second trains']);
    } finally {
      await worker.terminate();
    }
  });

  it('runs turns one at a time, in the order asked, and a turn released after a throw frees the next', async () => {
    const order: string[] = [];
    const run = async (name: string, fail = false) => {
      const release = await takeTrainingTurn();
      try {
        order.push(`${name} start`);
        await new Promise((resolve) => setTimeout(resolve, 5));
        if (fail) throw new Error('boom');
        order.push(`${name} end`);
      } finally {
        release();
      }
    };
    const results = await Promise.allSettled([run('a'), run('b', true), run('c')]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect(order).toEqual(['a start', 'a end', 'b start', 'c start', 'c end']);
  });
});
