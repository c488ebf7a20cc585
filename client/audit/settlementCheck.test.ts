import { getAddress } from 'ethers';
import { buildPayoutPlan } from '../../coordinator/chain/payoutPlan';
import { ContributionScorer } from '../../coordinator/contribution/contributionScorer';
import { settlementScores } from '../../coordinator/contribution/settlementScores';
import { createLogger } from '../../coordinator/logger';
import { MemoryStore } from '../../coordinator/store/memoryStore';
import type { JobRecord, RoundContribution, RoundRecord } from '../../coordinator/store/store';
import type { RoundTranscript, ScoringTranscript } from '../../coordinator/transcript/transcriptSchema';
import { JobSpecSchema } from '../../shared/schemas/jobSpec';
import { checkSettlement, type SettledRound } from './settlementCheck';

const spec = JobSpecSchema.parse({
  name: 't',
  model: { kind: 'builtin', name: 'mlp' },
  input: { shape: [2], numClasses: 2 },
  rounds: 3,
  secureAggregation: 'none',
});
const JOB = 'job_settle';
const POOL = 10n ** 18n + 3n;
const address = (c: string) => getAddress(`0x${c.repeat(40)}`);
const ADDRESS: Record<string, string> = { a: address('a'), b: address('b'), c: address('c'), d: address('d') };

/** Rounds as the coordinator stores them (with their contribution) and as their transcripts say them. */
function fixture(rounds: Array<{ participants: string[]; values?: Array<{ members: string[]; value: number }> }>) {
  const records: RoundRecord[] = [];
  const settled: SettledRound[] = [];
  rounds.forEach((r, i) => {
    const contribution: RoundContribution | undefined = r.values && {
      method: 'exact',
      metric: 'loss',
      baseline: -1,
      improvement: r.values.reduce((s, v) => s + v.value, 0),
      evaluations: 1,
      values: r.values,
    };
    records.push({
      jobId: JOB,
      round: i + 1,
      attempt: 0,
      status: 'completed',
      selected: r.participants,
      participants: r.participants,
      failures: [],
      metrics: {},
      startedAt: new Date(0),
      finishedAt: new Date(0),
      ...(contribution ? { contribution } : {}),
    });
    const transcript = {
      jobId: JOB,
      round: i + 1,
      attempt: 0,
      selected: r.participants,
      participants: r.participants,
      failures: [],
      startedAt: new Date(0).toISOString(),
      finishedAt: new Date(0).toISOString(),
      modelHash: '0'.repeat(64),
      // Lowercase in the transcript: the audit checksums addresses as the join check does.
      payoutAddresses: r.participants.map((clientId) => ({ clientId, address: ADDRESS[clientId].toLowerCase() })),
    } as unknown as RoundTranscript;
    settled.push({
      transcript,
      scoring: contribution
        ? { transcript: { contribution } as ScoringTranscript, values: contribution.values.map((v) => v.value) }
        : null,
    });
  });
  return { records, settled };
}

/** The plan the coordinator itself settles for these stored rounds (settlementScores + buildPayoutPlan). */
async function coordinatorPlan(records: RoundRecord[]) {
  const store = new MemoryStore();
  const now = new Date(0);
  await store.createJob({
    id: JOB,
    spec,
    status: 'completed',
    currentRound: records.length,
    modelHash: '',
    weightManifest: [],
    createdAt: now,
    updatedAt: now,
  } as JobRecord);
  for (const r of records) await store.saveRound(r);
  const counts = new Map<string, number>();
  for (const r of records) for (const c of r.participants) counts.set(c, (counts.get(c) ?? 0) + 1);
  for (const [clientId, roundsCompleted] of counts)
    await store.saveParticipant({
      jobId: JOB,
      clientId,
      payoutAddress: ADDRESS[clientId],
      joinedAt: now,
      lastSeenAt: now,
      roundsCompleted,
    });
  const scorer = new ContributionScorer({ store, logger: createLogger('silent') });
  const { label, scores } = await settlementScores(store, scorer)(JOB);
  return buildPayoutPlan(JOB, POOL, scores, await store.listParticipants(JOB), label);
}

describe('checkSettlement', () => {
  const cases: Array<[string, Parameters<typeof fixture>[0], string]> = [
    [
      'per-client Shapley values (contribution scores; a harmful client gets nothing)',
      [
        {
          participants: ['a', 'b', 'c'],
          values: [
            { members: ['a'], value: 0.3 },
            { members: ['b'], value: 0.1 },
            { members: ['c'], value: -0.05 },
          ],
        },
        {
          participants: ['a', 'b', 'd'],
          values: [
            { members: ['a'], value: 0.2 },
            { members: ['b'], value: 0.2 },
            { members: ['d'], value: 0.01 },
          ],
        },
      ],
      'contribution',
    ],
    [
      'cohort values (least squares on membership)',
      [
        {
          participants: ['a', 'b', 'c', 'd'],
          values: [
            { members: ['a', 'b'], value: 0.4 },
            { members: ['c', 'd'], value: 0.1 },
          ],
        },
        {
          participants: ['a', 'b', 'c', 'd'],
          values: [
            { members: ['a', 'c'], value: 0.3 },
            { members: ['b', 'd'], value: 0.2 },
          ],
        },
        {
          participants: ['a', 'b', 'c', 'd'],
          values: [
            { members: ['a', 'd'], value: 0.35 },
            { members: ['b', 'c'], value: 0.15 },
          ],
        },
      ],
      'contribution',
    ],
    [
      'rounds scored as one group, or not at all (participation)',
      [
        { participants: ['a', 'b', 'c'], values: [{ members: ['a', 'b', 'c'], value: 0.2 }] },
        { participants: ['a', 'b'] },
      ],
      'participation',
    ],
  ];

  it.each(cases)('gives the root the coordinator settles: %s', async (_name, rounds, label) => {
    const { records, settled } = fixture(rounds);
    const expected = await coordinatorPlan(records);
    const { settlement, divergences } = checkSettlement({
      jobId: JOB,
      spec,
      rounds: settled,
      poolWei: POOL,
      posted: { root: expected.root, total: BigInt(expected.totalWei) },
      current: null,
    });
    expect(settlement.scoreLabel).toBe(label);
    expect(expected.scoreLabel).toBe(label);
    expect(settlement.root).toBe(expected.root.toLowerCase());
    expect(settlement.totalWei).toBe(expected.totalWei);
    expect(settlement.allocations.map((a) => [a.account, a.amountWei, a.proof])).toEqual(
      expected.allocations.map((a) => [a.account, a.amountWei, a.proof]),
    );
    expect(divergences).toEqual([]);
  });

  it('uses the values recomputed from the utilities, and reports a posted root or total that differs', () => {
    const { settled } = fixture(cases[0][1]);
    const honest = checkSettlement({ jobId: JOB, spec, rounds: settled, poolWei: POOL, posted: null, current: null });
    // The signed value of c was raised, but its recomputed value (kept beside it) is what counts.
    const raised = structuredClone(settled);
    raised[0].scoring!.transcript.contribution.values[2].value = 5;
    expect(
      checkSettlement({ jobId: JOB, spec, rounds: raised, poolWei: POOL, posted: null, current: null }).settlement.root,
    ).toBe(honest.settlement.root);
    const wrongRoot = checkSettlement({
      jobId: JOB,
      spec,
      rounds: settled,
      poolWei: POOL,
      posted: { root: `0x${'12'.repeat(32)}`, total: POOL },
      current: null,
    });
    expect(wrongRoot.divergences.map((d) => d.check)).toEqual(['settlement-root']);
    expect(wrongRoot.divergences[0].message).toContain(honest.settlement.root);
    const wrongTotal = checkSettlement({
      jobId: JOB,
      spec,
      rounds: settled,
      poolWei: POOL,
      posted: { root: honest.settlement.root, total: POOL },
      current: null,
    });
    expect(wrongTotal.divergences.map((d) => d.check)).toEqual(['settlement-total']);
    // c harmed the model: no leaf for it.
    expect(honest.settlement.allocations.map((a) => a.account)).not.toContain(ADDRESS.c);
  });
});
