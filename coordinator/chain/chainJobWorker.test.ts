import { Wallet, ZeroHash } from 'ethers';
import { EscrowRevertError, JobStatus as EscrowStatus, type JobState } from '../../contracts/escrow';
import type { ChainJobStatus } from './chainJobStatus';
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
  escrow: async () => ({
    getJob: async () => ({ coordinator, status: EscrowStatus.Open, held: 0n, budget: 1n, deadline: 10n ** 12n }),
  }),
  chainTime: async () => 1000n,
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

describe('ChainJobWorker outcomes against a fake escrow', () => {
  const buyer = Wallet.createRandom();
  const otherRoot = `0x${'ab'.repeat(32)}`;
  const ourRoot = `0x${'cd'.repeat(32)}`;

  /** A job record and the escrow state the fake chain answers with. */
  function setup(
    jobOver: Partial<JobRecord>,
    escrowOver: Partial<JobState>,
    /** What a transaction does instead of succeeding (a former lease holder got there first). */
    raced: { settle?: () => never; release?: () => never; commit?: () => never } = {},
    cluster: Pick<ChainJobWorkerDeps, 'holdsLease' | 'onStatus'> = {},
  ) {
    const spec = { chain: { escrow: Wallet.createRandom().address, jobId: '1', chainId: 31337 } };
    const record = { id: 'job_fake', status: 'completed', currentRound: 1, spec, ...jobOver } as unknown as JobRecord;
    const onChain = {
      buyer: buyer.address,
      coordinator,
      status: EscrowStatus.Open,
      held: 10n,
      budget: 10n,
      lastRound: 1n,
      specHash: ZeroHash,
      payoutRoot: ZeroHash,
      disputed: false,
      haircut: false,
      deadline: 10n ** 12n,
      ...escrowOver,
    } as JobState;
    const calls: string[] = [];
    const escrow = {
      getJob: async () => onChain,
      getRound: async () => ({ modelHash: `0x${'00'.repeat(32)}`, metric: 0n, transcriptHash: ZeroHash }),
      commitRound: async () => {
        calls.push('commit');
        raced.commit?.();
        return { recorded: true, receipt: { hash: `0x${'33'.repeat(32)}` } };
      },
      release: async () => {
        calls.push('release');
        raced.release?.();
        return { hash: `0x${'11'.repeat(32)}` };
      },
      settle: async () => {
        calls.push('settle');
        raced.settle?.();
        return { hash: `0x${'22'.repeat(32)}` };
      },
    };
    const chain = {
      ...unfundedChain,
      escrow: async () => escrow,
      exclusive: <T>(_what: string, op: () => Promise<T>) => op(),
    } as unknown as ChainConnection;
    const plan = { root: ourRoot, totalWei: '9', scoreLabel: 'participation', allocations: [] };
    const deps: ChainJobWorkerDeps = {
      chain,
      store: {
        listRounds: async () => [{ round: 1, status: 'completed', modelHash: '00'.repeat(32), metrics: {} }],
        loadPayoutPlan: async () => plan,
      } as unknown as ChainJobWorkerDeps['store'],
      jobs: {
        getJob: async () => record,
        activateJob: async () => {
          calls.push('activate');
        },
        cancelJob: async (_id: string, reason: string) => {
          calls.push('cancel');
          Object.assign(record, { status: 'failed', failureReason: reason });
          return record;
        },
      },
      scoresFor: async () => ({ label: 'participation', scores: [] }),
      logger: createLogger('silent'),
      retryBaseMs: 10,
      retryMaxMs: 10,
      pollMs: 10,
      settleMarginSeconds: 600,
      ...cluster,
    };
    return { worker: new ChainJobWorker(record, deps), calls, record, onChain };
  }

  async function run(worker: ChainJobWorker) {
    worker.start();
    try {
      await worker.whenDone();
      return worker.snapshot();
    } finally {
      await worker.stop();
    }
  }

  it('reads a disputed settlement as settled, with the dispute, instead of halting', async () => {
    for (const [escrowOver, dispute] of [
      [{ status: EscrowStatus.Disputed, disputed: true, payoutRoot: ourRoot }, 'pending'],
      [{ status: EscrowStatus.Settled, disputed: true, payoutRoot: otherRoot }, 'corrected'],
      [{ status: EscrowStatus.Settled, disputed: true, payoutRoot: ourRoot }, 'confirmed'],
      [{ status: EscrowStatus.Swept, disputed: true, haircut: true, payoutRoot: ourRoot }, 'expired'],
    ] as const) {
      const { worker } = setup({}, escrowOver);
      const status = await run(worker);
      expect(status.settlement).toMatchObject({ status: 'settled', dispute, root: ourRoot });
      expect(status.lastRpcError).toBeNull();
    }
    // Without a dispute, a root that is not ours still halts the worker.
    const { worker } = setup({}, { status: EscrowStatus.Settled, payoutRoot: otherRoot });
    expect((await run(worker)).settlement.status).toBe('failed');
  });

  it('releases the budget of a job that ended without a committed round', async () => {
    const { worker, calls } = setup({ status: 'failed', currentRound: 0 }, { lastRound: 0n });
    const status = await run(worker);
    expect(calls).toEqual(['release']);
    expect(status.settlement).toMatchObject({ status: 'released', txHash: `0x${'11'.repeat(32)}` });
  });

  it('halts a funded pending job whose binding the chain denies, and never activates it', async () => {
    const { worker, calls } = setup({ status: 'pending', currentRound: 0 }, { lastRound: 0n });
    const status = await run(worker);
    expect(calls).toEqual([]);
    expect(status.lastRpcError?.message).toMatch(/^ESCROW_BINDING_INVALID: chain.authorization is missing/);
    expect(status.funded).toBe(false);
  });

  it('stops a running job once its escrow deadline is within the margin by chain time, then settles in time', async () => {
    // Chain time 1000; the deadline 300 s later, inside the 600 s margin.
    const { worker, calls, record } = setup({ status: 'running' }, { deadline: 1300n });
    const status = await run(worker);
    expect(calls).toEqual(['cancel', 'settle']);
    expect(record.failureReason).toMatch(/escrow deadline is 300 s away/);
    expect(status.settlement.status).toBe('settled');
    // Outside the margin nothing is stopped.
    const far = setup({ status: 'running' }, { deadline: 1000n + 601n });
    far.worker.start();
    await new Promise((r) => setTimeout(r, 100));
    await far.worker.stop();
    expect(far.calls).toEqual([]);
  });

  it('carries on, not halts, when a former chain-lease holder settled first: it reads the chain again and finds our root', async () => {
    let onChain!: JobState;
    const race = setup(
      {},
      {},
      {
        // Between this worker's read and its settle, the former holder's settle (same stored plan) was mined.
        settle: () => {
          Object.assign(onChain, { status: EscrowStatus.Settled, payoutRoot: ourRoot });
          throw new EscrowRevertError('AlreadySettled', [1n]);
        },
      },
    );
    onChain = race.onChain;
    const status = await run(race.worker);
    expect(race.calls).toEqual(['settle']);
    expect(status.settlement).toMatchObject({ status: 'settled', root: ourRoot });
    expect(status.retries).toBe(1);
  });

  it('carries on when a former holder committed the last round and settled between its read and its commit (JobNotOpen)', async () => {
    let onChain!: JobState;
    const race = setup(
      {},
      { lastRound: 0n },
      {
        commit: () => {
          Object.assign(onChain, { lastRound: 1n, status: EscrowStatus.Settled, payoutRoot: ourRoot });
          throw new EscrowRevertError('JobNotOpen', [1n, EscrowStatus.Settled]);
        },
      },
    );
    onChain = race.onChain;
    const status = await run(race.worker);
    // One commit tried (refused), then the chain read again: round 1 is there with our values, and our root.
    expect(race.calls).toEqual(['commit']);
    expect(status.commits.map((c) => [c.round, c.status])).toEqual([[1, 'committed']]);
    expect(status.settlement).toMatchObject({ status: 'settled', root: ourRoot });
  });

  it('carries on when a former holder released the budget first (JobNotOpen): released, not failed', async () => {
    let onChain!: JobState;
    const race = setup(
      { status: 'failed', currentRound: 0 },
      { lastRound: 0n },
      {
        release: () => {
          Object.assign(onChain, { status: EscrowStatus.Recovered });
          throw new EscrowRevertError('JobNotOpen', [1n, EscrowStatus.Recovered]);
        },
      },
    );
    onChain = race.onChain;
    const status = await run(race.worker);
    expect(race.calls).toEqual(['release']);
    expect(status.settlement.status).toBe('released');
  });

  it('still halts on a revert no other sender explains (the escrow refuses the payout total)', async () => {
    const race = setup(
      {},
      {},
      {
        settle: () => {
          throw new EscrowRevertError('PayoutExceedsBudget', [1n, 9n, 1n]);
        },
      },
    );
    const status = await run(race.worker);
    expect(status.settlement).toMatchObject({ status: 'failed' });
    expect(status.settlement.error).toMatch(/PayoutExceedsBudget/);
  });

  it('sends nothing once the store says the chain lease is gone, and stores no final state', async () => {
    const stored: Array<[string, boolean]> = [];
    const { worker, calls } = setup(
      {},
      {},
      {},
      {
        holdsLease: async () => false,
        onStatus: async (s: ChainJobStatus, done: boolean) => {
          stored.push([s.settlement.status, done]);
        },
      },
    );
    const status = await run(worker);
    expect(calls).toEqual([]);
    expect(status.settlement.status).not.toBe('settled');
    expect(status.settlement.status).not.toBe('failed');
    expect(stored.some(([, done]) => done)).toBe(false);
  });

  it('stores its status after each step that changed it, the last one done and settled', async () => {
    const stored: Array<[string, boolean]> = [];
    const { worker, calls } = setup(
      {},
      {},
      {},
      {
        holdsLease: async () => true,
        onStatus: async (s: ChainJobStatus, done: boolean) => {
          stored.push([s.settlement.status, done]);
        },
      },
    );
    await run(worker);
    expect(calls).toEqual(['settle']);
    expect(stored.at(-1)).toEqual(['settled', true]);
    expect(stored.filter(([, done]) => done)).toHaveLength(1);
  });
});
