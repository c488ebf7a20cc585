import { JobSpecSchema } from '../../shared/schemas/jobSpec';
import { PARTICIPATION_LABEL } from '../chain/participationScores';
import { MemoryStore } from '../store/memoryStore';
import type { JobRecord, RoundContribution, RoundRecord } from '../store/store';
import { ContributionScorer } from './contributionScorer';
import { CONTRIBUTION_LABEL, settlementScores } from './settlementScores';

const at = new Date(0);
const logger = { error: () => undefined, info: () => undefined, debug: () => undefined };

/** A finished job of clients a, b, c (two rounds each) whose rounds were scored with these values. */
async function settle(secureAggregation: 'none' | 'secagg', values: RoundContribution['values'][]) {
  const spec = JobSpecSchema.parse({
    name: 'settle',
    model: { kind: 'builtin', name: 'mlp', hiddenUnits: [4] },
    input: { shape: [3], numClasses: 2 },
    rounds: values.length,
    minClients: 3,
    secureAggregation,
  });
  const job: JobRecord = {
    id: 'job_settle',
    spec,
    status: 'completed',
    currentRound: values.length,
    modelHash: '0'.repeat(64),
    weightManifest: [],
    createdAt: at,
    updatedAt: at,
  };
  const store = new MemoryStore();
  await store.createJob(job);
  for (const clientId of ['a', 'b', 'c'])
    await store.saveParticipant({
      jobId: job.id,
      clientId,
      joinedAt: at,
      lastSeenAt: at,
      roundsCompleted: values.length,
    });
  for (const [i, v] of values.entries()) {
    const round: RoundRecord = {
      jobId: job.id,
      round: i + 1,
      attempt: 0,
      status: 'completed',
      selected: ['a', 'b', 'c'],
      participants: ['a', 'b', 'c'],
      failures: [],
      metrics: {},
      startedAt: at,
      finishedAt: at,
      contribution: {
        method: 'exact',
        metric: 'loss',
        baseline: -1,
        improvement: v.reduce((s, x) => s + x.value, 0),
        evaluations: 2,
        values: v,
      },
    };
    await store.saveRound(round);
  }
  const scorer = new ContributionScorer({ store, logger });
  try {
    return await settlementScores(store, scorer)(job.id);
  } finally {
    await scorer.close();
  }
}

describe('settlementScores', () => {
  it('pays a job whose rounds were only scored as a whole (no cohorts) on participation, even when the rounds made the model worse', async () => {
    const whole = [{ members: ['a', 'b', 'c'], value: -0.2 }];
    expect(await settle('secagg', [whole, whole])).toEqual({
      label: PARTICIPATION_LABEL,
      scores: [
        { clientId: 'a', score: 2 },
        { clientId: 'b', score: 2 },
        { clientId: 'c', score: 2 },
      ],
    });
  });

  it('pays on contribution scores once rounds tell clients apart', async () => {
    const perClient = [
      { members: ['a'], value: 0.3 },
      { members: ['b'], value: 0.1 },
      { members: ['c'], value: -0.1 },
    ];
    const settled = await settle('none', [perClient, perClient]);
    expect(settled.label).toBe(CONTRIBUTION_LABEL);
    expect(new Map(settled.scores.map((s) => [s.clientId, s.score]))).toEqual(
      new Map([
        ['a', 0.6],
        ['b', 0.2],
        ['c', -0.2],
      ]),
    );
  });

  it('pays on participation when per-client scores pay nobody (a validation set on which every round looks harmful)', async () => {
    const allHarmful = [
      { members: ['a'], value: -0.3 },
      { members: ['b'], value: -0.1 },
      { members: ['c'], value: 1e-12 },
    ];
    const settled = await settle('none', [allHarmful, allHarmful]);
    expect(settled.label).toBe(PARTICIPATION_LABEL);
    expect(settled.scores.map((s) => s.score)).toEqual([2, 2, 2]);
  });
});
