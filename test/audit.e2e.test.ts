/**
 * Signed round transcripts and the buyer's audit, end to end on a real anvil with real sockets:
 * an honest paid job audits clean through `tributary audit` (exit 0); a transcript rewritten by the
 * coordinator, one edited by someone without its key, a swapped checkpoint and a raised contribution
 * value are each caught with the right first divergence; a job without an escrow audits against the
 * key the coordinator serves; and a coordinator that settles a payout root
 * paying itself is caught, disputed by the buyer on chain, corrected by the arbiter with the audit's
 * recomputed root, after which every provider claims exactly its honest allocation.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { JsonRpcProvider } from 'ethers';
import { auditJob, type AuditJobParameters } from '../client/audit/auditJob';
import { loadOrCreateIdentity } from '../client/keyFile';
import { createSignedFetch } from '../client/signedFetch';
import { uploadValidationSet } from '../client/buyer';
import { createResearchClient } from '../client/plantedClient';
import type { AuditReport } from '../client/audit/auditReport';
import { EscrowClient, JobStatus } from '../contracts/escrow';
import { computePayouts } from '../contracts/payouts';
import { settlementScores } from '../coordinator/contribution/settlementScores';
import { startCoordinator, type Coordinator } from '../coordinator/server';
import type { TranscriptRecord } from '../coordinator/store/store';
import { loadOrCreateTranscriptKey } from '../coordinator/transcript/coordinatorIdentity';
import { signTranscript, transcriptHash } from '../coordinator/transcript/transcriptSigning';
import { datasetToCsv } from '../shared/data/csvWriter';
import { generateIdentity } from '../shared/identity/keyPair';
import { selectBackend } from '../shared/ml/backend';
import type { JobSpecInput } from '../shared/schemas/jobSpec';
import { startAnvil, type Anvil } from './support/anvil';
import {
  ARBITER_ACCOUNT,
  deployAsBuyer,
  fundAndBindJob,
  localProvider,
  paidProviders,
  type PaidProvider,
  testChainOptions,
} from './support/chainJob';
import { spawnTs } from './support/processes';
import { buyerClient, createJob } from './support/rest';
import { separableDataset } from './support/syntheticCsv';
import { testBackend } from './support/testBackend';

jest.setTimeout(300_000);

const FEATURES = 6;
const BUDGET = 10n ** 18n + 11n;

const spec: JobSpecInput = {
  name: 'audit-e2e',
  model: { kind: 'builtin', name: 'mlp', hiddenUnits: [8] },
  input: { shape: [FEATURES], numClasses: 2 },
  rounds: 2,
  minClients: 3,
  batchSize: 16,
  learningRate: 0.1,
  roundDeadlineMs: 30_000,
  quorumTimeoutMs: 30_000,
  secureAggregation: 'none',
};

/** The buyer's Ed25519 key, in a file as `tributary audit --key` reads it: paid jobs are private to their owner. */
const buyerKeyFile = join(mkdtempSync(join(tmpdir(), 'trib-audit-buyer-')), 'buyer.key');
const buyerKey = loadOrCreateIdentity(buyerKeyFile);
const asBuyer = createSignedFetch(buyerKey);

const validationCsv = datasetToCsv(separableDataset(200, FEATURES, 7), { shape: [FEATURES], labelColumn: 'label' });

async function startPaidCoordinator(
  rpcUrl: string,
  transcriptKeyFile: string,
  options: Parameters<typeof startCoordinator>[1] = {},
): Promise<Coordinator> {
  return startCoordinator(
    {
      port: 0,
      logLevel: 'error',
      ...testChainOptions(rpcUrl, 5000),
      transcriptKeyFile,
    },
    options,
  );
}

/** Funds and posts the job, uploads the validation set, runs three providers to the end. */
async function runPaidJob(
  coordinator: Coordinator,
  provider: JsonRpcProvider,
  escrow: EscrowClient,
  challengeWindow: number,
): Promise<{ jobId: string; providers: PaidProvider[] }> {
  const bound = await fundAndBindJob(escrow, provider, coordinator.chain.coordinatorAddress!, spec, BUDGET, {
    budgetWei: BUDGET,
    challengeWindow,
  });
  const jobId = await createJob(coordinator.url, bound, buyerKey);
  const uploaded = await uploadValidationSet(buyerClient(coordinator.url, buyerKey), { jobId, data: validationCsv });
  expect(uploaded.examples).toBeGreaterThan(0);
  const buyer = await provider.getSigner(0);
  const providers = await paidProviders(
    coordinator.url,
    jobId,
    [0, 1, 2].map((i) => separableDataset(40 + 40 * i, FEATURES, 300 + i)),
    buyer,
  );
  const finished = await Promise.all(providers.map((p) => p.client.run()));
  expect(finished.map((f) => f.status)).toEqual(['completed', 'completed', 'completed']);
  return { jobId, providers };
}

describe('signed transcripts and tributary audit on a real chain', () => {
  let anvil: Anvil | undefined;
  let provider: JsonRpcProvider | undefined;
  let coordinator: Coordinator | undefined;
  let providers: PaidProvider[] = [];
  let keyDir: string;

  beforeAll(async () => {
    await selectBackend(testBackend());
  });

  beforeEach(() => {
    keyDir = mkdtempSync(join(tmpdir(), 'trib-audit-'));
  });

  afterEach(async () => {
    for (const p of providers) p.client.close();
    providers = [];
    await coordinator?.close();
    coordinator = undefined;
    provider?.destroy();
    provider = undefined;
    await anvil?.stop();
    anvil = undefined;
  });

  it('audits an honest job clean, and names the first divergence of a rewritten or edited transcript, a swapped checkpoint and a raised contribution value', async () => {
    anvil = await startAnvil();
    provider = localProvider(anvil.url);
    const { escrow } = await deployAsBuyer(provider);
    const keyFile = join(keyDir, 'transcripts.key');
    coordinator = await startPaidCoordinator(anvil.url, keyFile);
    const run = await runPaidJob(coordinator, provider, escrow, 0);
    providers = run.providers;
    const { jobId } = run;
    const settled = await coordinator.chain.whenSettled(jobId);
    expect(settled.settlement).toMatchObject({ status: 'settled', scoreLabel: 'contribution' });

    // The transcript key is served, kept in its file, and every committed round's hash is its transcript's.
    const identity = (await (await fetch(`${coordinator.url}/v1/identity`)).json()) as { transcriptKey: string };
    expect(identity.transcriptKey).toBe(loadOrCreateTranscriptKey(keyFile).clientId);
    // The job is private (paid): a stranger reads no transcript, its owner reads them all.
    expect((await fetch(`${coordinator.url}/v1/jobs/${jobId}/transcripts/1`)).status).toBe(401);
    for (const round of [1, 2]) {
      const res = await asBuyer(`${coordinator.url}/v1/jobs/${jobId}/transcripts/${round}`);
      const body = (await res.json()) as {
        round: { hash: string; transcript: unknown };
        scoring: { transcript: { roundTranscriptHash: string } };
      };
      expect(transcriptHash(body.round.transcript)).toBe(body.round.hash);
      expect((await escrow.getRound(1n, round)).transcriptHash).toBe(`0x${body.round.hash}`);
      expect(body.scoring.transcript.roundTranscriptHash).toBe(body.round.hash);
    }
    const missing = await asBuyer(`${coordinator.url}/v1/jobs/${jobId}/transcripts/3`);
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { error: { code: string } }).error.code).toBe('TRANSCRIPT_NOT_FOUND');

    // The buyer's CLI: clean, exit 0, and the recomputed root is the one on chain.
    const validationFile = join(keyDir, 'validation.csv');
    writeFileSync(validationFile, validationCsv);
    const cli = spawnTs('cli/tributary.ts', [
      'audit',
      '--job',
      jobId,
      '--coordinator',
      coordinator.url,
      '--rpc-url',
      anvil.url,
      '--validation-set',
      validationFile,
      '--key',
      buyerKeyFile,
      '--backend',
      testBackend(),
      '--json',
    ]);
    expect(await cli.exit).toBe(0);
    const clean = JSON.parse(cli.lines[cli.lines.length - 1]) as AuditReport;
    const onChain = await escrow.getJob(1n);
    // Clean with nothing skipped: every check ran (no notes), on both rounds and both scorings.
    expect(clean).toMatchObject({ clean: true, firstDivergence: null, divergences: [], notes: [] });
    expect(clean.rounds.map((r) => [r.round, r.scored])).toEqual([
      [1, true],
      [2, true],
    ]);
    expect(clean.settlement).toMatchObject({
      scoreLabel: 'contribution',
      root: onChain.payoutRoot.toLowerCase(),
      totalWei: onChain.payoutTotal.toString(),
      posted: { root: onChain.payoutRoot.toLowerCase(), totalWei: onChain.payoutTotal.toString() },
    });
    expect(clean.keys.signing).toEqual([identity.transcriptKey]);
    // The coordinator's own validation metrics, recomputed by the buyer.
    const rounds = (await (await asBuyer(`${coordinator.url}/v1/jobs/${jobId}/rounds`)).json()) as {
      rounds: Array<{ round: number; status: string; metrics: Record<string, number> }>;
    };
    for (const r of rounds.rounds.filter((x) => x.status === 'completed')) {
      expect(clean.rounds[r.round - 1].accuracy).toBeCloseTo(r.metrics.validation_accuracy, 6);
    }

    const store = coordinator.store;
    const audit = (extra: Partial<AuditJobParameters> = {}) =>
      auditJob({
        coordinator: coordinator!.url,
        jobId,
        rpcUrl: anvil!.url,
        validationSet: { text: validationCsv, format: 'csv' },
        identity: buyerKey,
        ...extra,
      });
    const key = loadOrCreateTranscriptKey(keyFile);
    const original = async (round: number, kind: TranscriptRecord['kind']) =>
      (await store.loadTranscript(jobId, round, kind))!;
    /** Stores an edited transcript: re-signed with the coordinator's key (the coordinator lying), or with the old signature. */
    const rewrite = async (record: TranscriptRecord, edit: (t: Record<string, unknown>) => void, resign: boolean) => {
      const body = JSON.parse(record.text) as Record<string, unknown>;
      edit(body);
      const signed = resign
        ? signTranscript(key, body as { coordinatorKey: string })
        : { ...record, text: JSON.stringify(body), hash: transcriptHash(body) };
      await store.saveTranscript({ ...record, ...signed });
    };

    // The coordinator rewrites round 2's transcript after the commit (an extra selected client) and re-signs it.
    const round2 = await original(2, 'round');
    await rewrite(round2, (t) => (t.selected as string[]).push('f'.repeat(64)), true);
    let report = await audit();
    expect(report.clean).toBe(false);
    expect(report.firstDivergence).toMatchObject({ check: 'transcript-hash', round: 2 });
    await store.saveTranscript(round2);

    // Someone without the key edits round 1's metrics in the store: the signature no longer verifies.
    const round1 = await original(1, 'round');
    await rewrite(round1, (t) => ((t.metrics as Record<string, number>).validation_accuracy = 0.99), false);
    report = await audit();
    expect(report.firstDivergence).toMatchObject({ check: 'transcript-signature', round: 1 });
    await store.saveTranscript(round1);

    // Round 1's checkpoint swapped for other weights: the served model is not the committed one.
    const checkpoint1 = (await store.loadCheckpoint(jobId, 1))!;
    const checkpoint2 = (await store.loadCheckpoint(jobId, 2))!;
    await store.saveCheckpoint({ ...checkpoint1, weights: checkpoint2.weights });
    report = await audit();
    expect(report.firstDivergence).toMatchObject({ check: 'checkpoint', round: 1 });
    await store.saveCheckpoint(checkpoint1);

    // The coordinator raises one client's Shapley value in round 1's scoring transcript and re-signs it.
    const scoring1 = await original(1, 'scoring');
    const raisedClient = (JSON.parse(scoring1.text) as { contribution: { values: Array<{ members: string[] }> } })
      .contribution.values[0].members[0];
    await rewrite(
      scoring1,
      (t) => {
        const c = t.contribution as { values: Array<{ value: number }> };
        c.values[0].value += 0.05;
      },
      true,
    );
    report = await audit();
    expect(report.firstDivergence).toMatchObject({ check: 'scoring-values', round: 1 });
    expect(report.firstDivergence!.claimed).toContain(raisedClient.slice(0, 12));
    await store.saveTranscript(scoring1);

    // Restored: clean again; and a pinned key that is not the coordinator's fails every transcript.
    expect((await audit()).clean).toBe(true);
    report = await audit({ coordinatorKey: 'a'.repeat(64) });
    expect(report.firstDivergence).toMatchObject({ check: 'transcript-key', round: 1 });
  });

  it('audits a job without an escrow against the served key; a pinned other key, another validation set and bad inputs are reported', async () => {
    coordinator = await startCoordinator({
      port: 0,
      logLevel: 'error',
      transcriptKeyFile: join(keyDir, 'transcripts.key'),
    });
    const jobId = await createJob(coordinator.url, { ...spec, rounds: 1 });
    const uploaded = await uploadValidationSet(buyerClient(coordinator.url), { jobId, data: validationCsv });
    expect(uploaded.examples).toBeGreaterThan(0);
    const clients = [0, 1, 2].map((i) =>
      createResearchClient({
        url: coordinator!.url,
        jobId,
        identity: generateIdentity(),
        dataset: separableDataset(40, FEATURES, 500 + i),
        backend: testBackend(),
        allowPlaintext: true, // mode none
        reconnectDelayMs: 50,
      }),
    );
    try {
      expect((await Promise.all(clients.map((c) => c.run()))).map((f) => f.status)).toEqual([
        'completed',
        'completed',
        'completed',
      ]);
    } finally {
      for (const c of clients) c.close();
    }
    await coordinator.contributions.whenIdle(jobId);
    const params = {
      coordinator: coordinator.url,
      jobId,
      validationSet: { text: validationCsv, format: 'csv' as const },
    };
    const report = await auditJob(params);
    expect(report).toMatchObject({ clean: true, escrow: null, settlement: null });
    expect(report.rounds).toMatchObject([{ round: 1, scored: true }]);
    expect(report.keys.signing).toEqual([coordinator.transcripts.publicKey]);
    expect(report.notes).toEqual([expect.stringMatching(/no escrow/)]);
    const pinned = await auditJob({ ...params, coordinatorKey: 'b'.repeat(64) });
    expect(pinned.firstDivergence).toMatchObject({ check: 'transcript-key', round: 1 });
    // Another validation set than the one uploaded: the rounds were evaluated on something else.
    const otherSet = datasetToCsv(separableDataset(200, FEATURES, 8), { shape: [FEATURES], labelColumn: 'label' });
    const other = await auditJob({ ...params, validationSet: { text: otherSet, format: 'csv' } });
    expect(other.firstDivergence).toMatchObject({ check: 'validation-set', round: 1 });
    // A validation set that does not fit the job, and a job the coordinator does not have: errors, not divergences.
    await expect(auditJob({ ...params, validationSet: { text: 'a,b\n1,2\n', format: 'csv' } })).rejects.toMatchObject({
      code: 'VALIDATION_SET_INVALID',
    });
    await expect(auditJob({ ...params, jobId: 'job_missing' })).rejects.toMatchObject({ code: 'JOB_NOT_FOUND' });
    await expect(auditJob({ ...params, coordinator: 'http://127.0.0.1:9' })).rejects.toMatchObject({
      code: 'AUDIT_SOURCE_UNAVAILABLE',
    });
  });

  it("catches a settlement paying the coordinator itself; the buyer disputes, the arbiter posts the audit's root, and claims pay the honest split", async () => {
    anvil = await startAnvil();
    provider = localProvider(anvil.url);
    const { buyer, escrow } = await deployAsBuyer(provider);
    const coordinatorAddress = (await provider.getSigner(1)).address;
    // A dishonest coordinator: it scores honestly (and signs the scores), then settles everything to its own address.
    let self: Coordinator | undefined;
    let honestScores: Array<{ clientId: string; score: number }> = [];
    coordinator = await startPaidCoordinator(anvil.url, join(keyDir, 'transcripts.key'), {
      scoresFor: async (jobId) => {
        honestScores = (await settlementScores(self!.store, self!.contributions)(jobId)).scores;
        const p = (await self!.store.listParticipants(jobId))[0];
        await self!.store.saveParticipant({ ...p, clientId: 'sybil', payoutAddress: coordinatorAddress });
        return { label: 'contribution', scores: [{ clientId: 'sybil', score: 1 }] };
      },
    });
    self = coordinator;
    const run = await runPaidJob(coordinator, provider, escrow, 3600);
    providers = run.providers;
    const { jobId } = run;
    expect((await coordinator.chain.whenSettled(jobId)).settlement.status).toBe('settled');
    const posted = await escrow.getJob(1n);
    const selfishTree = computePayouts(posted.budget, [{ account: coordinatorAddress, score: 1 }]);
    expect(posted.payoutRoot).toBe(selfishTree.root);

    // A paid job is private: a stranger cannot even read it to audit; and it cannot be audited without its chain.
    const validationSet = { text: validationCsv, format: 'csv' as const };
    await expect(
      auditJob({ coordinator: coordinator.url, jobId, rpcUrl: anvil.url, validationSet }),
    ).rejects.toMatchObject({ code: 'AUDIT_SOURCE_UNAVAILABLE' });
    await expect(
      auditJob({ coordinator: coordinator.url, jobId, validationSet, identity: buyerKey }),
    ).rejects.toMatchObject({
      code: 'CONFIG_INVALID',
    });

    // The buyer's audit: every round holds together, the posted root does not.
    const report = await auditJob({
      coordinator: coordinator.url,
      jobId,
      rpcUrl: anvil.url,
      validationSet: { text: validationCsv, format: 'csv' },
      identity: buyerKey,
    });
    expect(report.clean).toBe(false);
    expect(report.divergences.map((d) => d.check)).toEqual(['settlement-root']);
    const recomputed = report.settlement!;
    expect(recomputed.posted!.root).toBe(posted.payoutRoot.toLowerCase());
    // The audit's scores are the ones the coordinator computed (and would have settled on) itself.
    expect(recomputed.scoreLabel).toBe('contribution');
    expect(new Map(recomputed.scores.map((s) => [s.clientId, s.score]))).toEqual(
      new Map(honestScores.map((s) => [s.clientId, s.score])),
    );
    const providerAddresses = new Set(providers.map((p) => p.wallet.address));
    expect(recomputed.allocations.length).toBeGreaterThan(0);
    for (const a of recomputed.allocations) expect(providerAddresses.has(a.account)).toBe(true);

    // The CLI says the same with exit code 1; an audit that cannot run exits 2 with a code.
    const validationFile = join(keyDir, 'validation.csv');
    writeFileSync(validationFile, validationCsv);
    const args = [
      'audit',
      '--coordinator',
      coordinator.url,
      '--rpc-url',
      anvil.url,
      '--validation-set',
      validationFile,
      '--key',
      buyerKeyFile,
    ];
    const diverged = spawnTs('cli/tributary.ts', [...args, '--job', jobId, '--backend', testBackend()]);
    expect(await diverged.exit).toBe(1);
    expect(diverged.lines.join('\n')).toMatch(/^DIVERGED: 1 divergence\(s\); the first \(settlement-root\)/m);
    const failed = spawnTs('cli/tributary.ts', [...args, '--job', 'job_unknown', '--json']);
    expect(await failed.exit).toBe(2);
    expect(JSON.parse(failed.lines[failed.lines.length - 1])).toMatchObject({ error: { code: 'JOB_NOT_FOUND' } });

    // Dispute within the challenge window; the arbiter posts the audit's root.
    await escrow.connect(buyer).dispute(1n);
    expect((await escrow.getJob(1n)).status).toBe(JobStatus.Disputed);
    const arbiter = await provider.getSigner(ARBITER_ACCOUNT);
    await escrow.connect(arbiter).resolveDispute(1n, recomputed.root, BigInt(recomputed.totalWei));

    // The coordinator's leaf no longer proves; each provider claims exactly its recomputed allocation.
    const coordinatorSigner = await provider.getSigner(1);
    const selfish = selfishTree.allocations[0];
    await expect(escrow.connect(coordinatorSigner).claim(1n, selfish)).rejects.toMatchObject({
      errorName: 'InvalidProof',
    });
    let claimed = 0n;
    for (const a of recomputed.allocations) {
      const wallet = providers.find((p) => p.wallet.address === a.account)!.wallet.connect(provider);
      const before = await provider.getBalance(a.account);
      const receipt = await new EscrowClient(escrow.address, wallet).claim(1n, {
        account: a.account,
        amount: BigInt(a.amountWei),
        proof: a.proof,
      });
      expect((await provider.getBalance(a.account)) - before + receipt.fee).toBe(BigInt(a.amountWei));
      claimed += BigInt(a.amountWei);
    }
    const after = await escrow.getJob(1n);
    expect(after.claimed).toBe(claimed);
    expect(after.claimed).toBe(BigInt(recomputed.totalWei));
    expect(after.haircut).toBe(false);

    // After the arbiter's correction the escrow's root is the recomputed one: the audit now reports
    // only that the coordinator's own post diverged.
    const again = await auditJob({
      coordinator: coordinator.url,
      jobId,
      rpcUrl: anvil.url,
      validationSet: { text: validationCsv, format: 'csv' },
      identity: buyerKey,
    });
    expect(again.settlement!.current).toMatchObject({ root: recomputed.root, disputed: true, haircut: false });
    expect(again.divergences.map((d) => d.check)).toEqual(['settlement-root']);
  });
});
