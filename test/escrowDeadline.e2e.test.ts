/**
 * A buyer who sets its escrow's deadline shorter than its job, to keep the model and recover the
 * budget, on a real anvil with real sockets and the project's own providers: the escrow lets the
 * buyer recover everything once the deadline passes unsettled, and the coordinator may not commit or
 * settle after it. Played with anvil's clock: after rounds were committed (and the model was there to
 * download), chain time jumps to two minutes before the deadline. The coordinator must stop the job
 * and settle the committed rounds before the deadline, so that the providers claim their shares and
 * the buyer's recovery after the deadline reverts.
 */
import type { JsonRpcProvider } from 'ethers';
import { claimPayout } from '../client/claimPayout';
import { JobStatus } from '../contracts/escrow';
import { startCoordinator, type Coordinator } from '../coordinator/server';
import { selectBackend } from '../shared/ml/backend';
import type { JobSpecInput } from '../shared/schemas/jobSpec';
import { startAnvil, type Anvil } from './support/anvil';
import {
  deployAsBuyer,
  fundAndBindJob,
  localProvider,
  paidProviders,
  type PaidProvider,
  testChainOptions,
} from './support/chainJob';
import { createJob } from './support/rest';
import { separableDataset } from './support/syntheticCsv';
import { testBackend } from './support/testBackend';

jest.setTimeout(300_000);

const FEATURES = 6;
const BUDGET = 9n * 10n ** 17n;

const spec: Omit<JobSpecInput, 'chain'> = {
  name: 'short-deadline',
  model: { kind: 'builtin', name: 'mlp', hiddenUnits: [8] },
  input: { shape: [FEATURES], numClasses: 2 },
  rounds: 1000,
  minClients: 3,
  batchSize: 16,
  learningRate: 0.1,
  roundDeadlineMs: 60_000,
  quorumTimeoutMs: 60_000,
  secureAggregation: 'none',
};

async function waitUntil(pred: () => Promise<boolean>, what: string, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('an escrow deadline shorter than the job', () => {
  let anvil: Anvil | undefined;
  let provider: JsonRpcProvider | undefined;
  let coordinator: Coordinator | undefined;
  let providers: PaidProvider[] = [];

  beforeAll(async () => {
    await selectBackend(testBackend());
  });
  afterAll(async () => {
    for (const p of providers) p.client.close();
    await coordinator?.close();
    provider?.destroy();
    await anvil?.stop();
  });

  it('stops the job and settles the committed rounds before the deadline; the buyer cannot recover the budget', async () => {
    anvil = await startAnvil();
    provider = localProvider(anvil.url);
    const { escrow, buyer } = await deployAsBuyer(provider);
    coordinator = await startCoordinator({
      port: 0,
      logLevel: 'error',
      ...testChainOptions(anvil.url, 5000),
    });
    const bound = await fundAndBindJob(escrow, provider, coordinator.chain.coordinatorAddress!, spec, BUDGET, {
      budgetWei: BUDGET,
    });
    const jobId = await createJob(coordinator.url, bound);
    providers = await paidProviders(
      coordinator.url,
      jobId,
      [0, 1, 2].map((i) => separableDataset(60, FEATURES, 500 + i)),
      buyer,
    );
    const runs = providers.map((p) => p.client.run().catch((e: unknown) => e));
    // Two rounds committed on chain: the buyer has a model worth keeping.
    await waitUntil(async () => (await escrow.getJob(1n)).lastRound >= 2n, 'two rounds on chain');

    // Chain time jumps to two minutes before the escrow's deadline.
    const { deadline } = await escrow.getJob(1n);
    const now = BigInt((await provider.getBlock('latest'))!.timestamp);
    await provider.send('evm_increaseTime', [Number(deadline - now - 120n)]);
    await provider.send('evm_mine', []);

    // The coordinator stops the job and settles what was committed, before the deadline.
    await waitUntil(async () => (await escrow.getJob(1n)).status === JobStatus.Settled, 'settlement', 60_000);
    const job = (await coordinator.store.getJob(jobId))!;
    expect(job.status).toBe('failed');
    expect(job.failureReason).toMatch(/deadline/);
    const settledAt = await escrow.getJob(1n);
    expect(settledAt.payoutTotal).toBeGreaterThan((BUDGET * 99n) / 100n);
    for (const r of await Promise.all(runs)) expect(r).toMatchObject({ status: 'failed' });

    // Past the deadline the buyer cannot take the budget back; each provider claims its share.
    await provider.send('evm_increaseTime', [600]);
    await provider.send('evm_mine', []);
    const recovery = await escrow.recoverAfterDeadline(1n).then(
      () => 'recovered',
      (e: unknown) => (e as { errorName?: string }).errorName ?? String(e),
    );
    expect(recovery).not.toBe('recovered');
    expect((await escrow.getJob(1n)).status).toBe(JobStatus.Settled);
    for (const p of providers) {
      const claimed = await claimPayout({ coordinator: coordinator.url, jobId, rpcUrl: anvil.url, wallet: p.wallet });
      expect(BigInt(claimed.amountWei)).toBeGreaterThan(0n);
    }
  });
});
