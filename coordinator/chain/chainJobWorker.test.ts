import { Wallet } from 'ethers';
import { JobStatus as EscrowStatus } from '../../contracts/escrow';
import { createLogger } from '../logger';
import type { JobRecord } from '../store/store';
import type { ChainConnection } from './chainConnection';
import { ChainJobWorker, type ChainJobWorkerDeps } from './chainJobWorker';

const coordinator = Wallet.createRandom().address;
const job = {
  id: 'job_wake',
  status: 'pending',
  currentRound: 0,
  spec: { chain: { escrow: Wallet.createRandom().address, jobId: '1', chainId: 31337 } },
} as unknown as JobRecord;

/** A chain whose escrow job is open but unfunded: every step ends 'idle' and the worker sleeps for pollMs. */
const unfundedChain = {
  address: coordinator,
  chainId: async () => 31337,
  escrow: async () => ({ getJob: async () => ({ coordinator, status: EscrowStatus.Open, held: 0n, budget: 1n }) }),
  timed: <T>(_what: string, p: Promise<T>) => p,
  redact: (text: string) => text,
} as unknown as ChainConnection;

describe('ChainJobWorker', () => {
  it('steps at once after a wake() that came while a step was running (the wake is not lost)', async () => {
    let steps = 0;
    let stepStarted = (_n: number) => {};
    let release2!: () => void;
    const deps: ChainJobWorkerDeps = {
      chain: unfundedChain,
      store: {} as ChainJobWorkerDeps['store'],
      jobs: {
        getJob: async () => {
          stepStarted(++steps);
          // Step 2 is held until the test has woken the worker.
          if (steps === 2) await new Promise<void>((resolve) => (release2 = resolve));
          return job;
        },
        activateJob: async () => {},
        cancelJob: async () => job,
      },
      scoresFor: async () => ({ label: 'participation', scores: [] }),
      logger: createLogger('silent'),
      retryBaseMs: 10,
      retryMaxMs: 10,
      pollMs: 10, // step 1's wait ends by its timer
    };
    const reached = (n: number) =>
      new Promise<void>((resolve) => {
        stepStarted = (count) => {
          if (count >= n) resolve();
        };
      });
    const worker = new ChainJobWorker(job, deps);
    try {
      const second = reached(2);
      worker.start();
      await second;
      deps.pollMs = 600_000; // from now on only a wake() makes the worker step again soon
      worker.wake(); // a round completed while step 2 runs
      const third = reached(3);
      release2();
      const bound = new Promise<'timer'>((resolve) => setTimeout(() => resolve('timer'), 10_000).unref());
      expect(await Promise.race([third.then(() => 'stepped' as const), bound])).toBe('stepped');
    } finally {
      await worker.stop();
    }
  });
});
