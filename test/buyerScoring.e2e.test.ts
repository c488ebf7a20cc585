/**
 * A buyer who wants its budget back after getting the model, on a real anvil with real sockets: it
 * funds a paid job, lets three honest providers train it to the end, and steers contribution scoring
 * with a validation set whose labels are flipped, so every round "makes the model worse" and every
 * provider's Shapley value is negative. Contribution scores that pay nobody must not hand the pool
 * back to the buyer: the settlement falls back to participation, every provider can claim a share,
 * the buyer's refund is only the rounding dust, and the buyer's own audit finds the posted root clean.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { JsonRpcProvider } from 'ethers';
import { auditJob } from '../client/audit/auditJob';
import { getAudit, uploadValidationSet } from '../client/buyer';
import { loadOrCreateIdentity } from '../client/keyFile';
import { createSignedFetch } from '../client/signedFetch';
import { JobStatus } from '../contracts/escrow';
import { contributionReport } from '../coordinator/contribution/contributionReport';
import { startCoordinator, type Coordinator } from '../coordinator/server';
import { datasetToCsv } from '../shared/data/csvWriter';
import type { Dataset } from '../shared/data/dataset';
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
import { buyerClient, createJob } from './support/rest';
import { separableDataset } from './support/syntheticCsv';
import { testBackend } from './support/testBackend';

jest.setTimeout(300_000);

const FEATURES = 6;
const BUDGET = 10n ** 18n;

const spec: JobSpecInput = {
  name: 'buyer-flipped-validation',
  model: { kind: 'builtin', name: 'mlp', hiddenUnits: [8] },
  input: { shape: [FEATURES], numClasses: 2 },
  rounds: 3,
  minClients: 3,
  batchSize: 16,
  learningRate: 0.3,
  localEpochs: 2,
  roundDeadlineMs: 60_000,
  quorumTimeoutMs: 60_000,
  secureAggregation: 'none',
};

/** The same examples with every label flipped: the better the model learns the task, the worse it scores. */
function flipped(data: Dataset): Dataset {
  return { ...data, y: Int32Array.from(data.y, (label) => 1 - label) };
}

describe('a buyer steering contribution scores to get its budget back', () => {
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

  it('a flipped-label validation set makes every contribution negative, yet the providers are paid and the buyer recovers only dust', async () => {
    anvil = await startAnvil();
    provider = localProvider(anvil.url);
    const { escrow } = await deployAsBuyer(provider);
    coordinator = await startCoordinator({
      port: 0,
      logLevel: 'error',
      ...testChainOptions(anvil.url, 5000),
    });
    const keyDir = mkdtempSync(join(tmpdir(), 'trib-buyer-scoring-'));
    const buyerKey = loadOrCreateIdentity(join(keyDir, 'buyer.key'));
    const bound = await fundAndBindJob(escrow, provider, coordinator.chain.coordinatorAddress!, spec, BUDGET, {
      budgetWei: BUDGET,
    });
    const jobId = await createJob(coordinator.url, bound, buyerKey);
    const validationCsv = datasetToCsv(flipped(separableDataset(300, FEATURES, 7)), {
      shape: [FEATURES],
      labelColumn: 'label',
    });
    await uploadValidationSet(buyerClient(coordinator.url, buyerKey), { jobId, data: validationCsv });
    const buyer = await provider.getSigner(0);
    providers = await paidProviders(
      coordinator.url,
      jobId,
      [0, 1, 2].map((i) => separableDataset(120, FEATURES, 300 + i)),
      buyer,
    );
    const finished = await Promise.all(providers.map((p) => p.client.run()));
    expect(finished.map((f) => f.status)).toEqual(['completed', 'completed', 'completed']);
    const settled = await coordinator.chain.whenSettled(jobId);
    expect(settled.settlement.status).toBe('settled');

    // The attack worked on the scores: no provider has a positive contribution.
    const report = await contributionReport(coordinator.store, jobId);
    expect(report.clients).toHaveLength(3);
    expect(report.clients.every((c) => c.score <= 0)).toBe(true);

    // It did not work on the money: the pool is paid out by participation, a third each.
    expect(settled.settlement.scoreLabel).toBe('participation');
    const onChain = await escrow.getJob(1n);
    expect(onChain.status).toBe(JobStatus.Settled);
    expect(BUDGET - onChain.payoutTotal).toBeLessThan(3n);
    const payouts = await coordinator.chain.payouts((await coordinator.store.getJob(jobId))!);
    expect(payouts).toHaveLength(3);
    for (const p of providers) {
      const mine = payouts.find((x) => x.account === p.wallet.address);
      expect(mine).toBeDefined();
      expect(BigInt(mine!.amountWei)).toBe(BUDGET / 3n);
    }
    // The owner's audit trail records the settlement this coordinator posted: its root, total and transaction.
    const entries = (await getAudit(buyerClient(coordinator.url, buyerKey), { jobId })).entries;
    expect(entries.map((e) => e.action)).toEqual([
      'job.created',
      'job.validation-set.replaced',
      'job.settlement.posted',
    ]);
    expect(entries[2]).toMatchObject({
      actor: 'operator',
      digests: { root: onChain.payoutRoot.slice(2).toLowerCase() },
      details: {
        totalWei: onChain.payoutTotal.toString(),
        scoreLabel: 'participation',
        txHash: settled.settlement.txHash,
      },
    });
    // A provider reads its own payout proof, not another's; a stranger reads none.
    const asProvider0 = createSignedFetch(loadOrCreateIdentity(providers[0].keyFile));
    const payoutUrl = (p: PaidProvider) => `${coordinator!.url}/v1/jobs/${jobId}/payouts/${p.wallet.address}`;
    expect((await asProvider0(payoutUrl(providers[0]))).status).toBe(200);
    const foreign = await asProvider0(payoutUrl(providers[1]));
    expect(foreign.status).toBe(403);
    expect(((await foreign.json()) as { error: { code: string } }).error.code).toBe('AUTH_FORBIDDEN');
    expect((await fetch(payoutUrl(providers[1]))).status).toBe(401);
    // The buyer's refund after settlement is the dust, not its budget.
    const before = (await escrow.getJob(1n)).refunded;
    await escrow.refund(1n);
    expect((await escrow.getJob(1n)).refunded - before).toBe(BUDGET - onChain.payoutTotal);

    // The buyer's own audit, with its flipped validation set, recomputes the same root: nothing to dispute.
    const audit = await auditJob({
      jobId,
      coordinator: coordinator.url,
      rpcUrl: anvil.url,
      validationSet: { text: validationCsv, format: 'csv' },
      identity: buyerKey,
    });
    expect(audit.settlement?.scoreLabel).toBe('participation');
    expect(audit.divergences.filter((d) => d.check.startsWith('settlement'))).toEqual([]);
  });
});
