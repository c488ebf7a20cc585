import { JobSpecSchema } from '../../shared/schemas/jobSpec';
import type { JobRecord, RoundRecord } from '../store/store';
import { buildContributionReport, payoutShares, privateScores } from './contributionReport';

function job(mode: 'none' | 'secagg'): JobRecord {
  const spec = JobSpecSchema.parse({
    name: 'report',
    model: { kind: 'builtin', name: 'mlp' },
    input: { shape: [4], numClasses: 2 },
    rounds: 3,
    minClients: 3,
    secureAggregation: mode,
  });
  const at = new Date(0);
  return {
    id: 'job_report',
    spec,
    status: 'completed',
    currentRound: 3,
    modelHash: '0'.repeat(64),
    weightManifest: [],
    createdAt: at,
    updatedAt: at,
  };
}

function round(n: number, values: Array<[string[], number]>, status: RoundRecord['status'] = 'completed'): RoundRecord {
  const at = new Date(n * 1000);
  return {
    jobId: 'job_report',
    round: n,
    attempt: 0,
    status,
    selected: [],
    participants: values.flatMap((v) => v[0]),
    failures: [],
    metrics: {},
    startedAt: at,
    finishedAt: at,
    ...(values.length > 0
      ? {
          contribution: {
            method: 'exact' as const,
            metric: 'loss' as const,
            baseline: -1,
            improvement: values.reduce((s, v) => s + v[1], 0),
            evaluations: 8,
            values: values.map(([members, value]) => ({ members, value })),
          },
        }
      : {}),
  };
}

describe('payoutShares', () => {
  it('pays positive scores proportionally and nothing to scores <= 0', () => {
    expect(payoutShares([3, 1, 0, -2])).toEqual([0.75, 0.25, 0, 0]);
    expect(payoutShares([-1, 0])).toEqual([0, 0]);
    expect(payoutShares([])).toEqual([]);
  });
});

describe('buildContributionReport', () => {
  it("plaintext: sums each client's per-round Shapley values; lists unscored rounds", () => {
    const rounds = [
      round(1, [
        [['a'], 0.5],
        [['b'], 0.25],
        [['c'], -0.125],
      ]),
      round(2, [], 'failed'),
      round(2, [
        [['a'], 0.25],
        [['b'], 0.25],
        [['c'], 0],
      ]),
      round(3, []),
    ];
    const report = buildContributionReport(job('none'), rounds, true);
    expect(report.status).toBe('scored');
    expect(report.method).toBe('shapley');
    expect(report.metric).toBe('loss');
    expect(report.unscoredRounds).toEqual([3]);
    expect(report.rounds.map((r) => r.round)).toEqual([1, 2]);
    expect(report.clients).toEqual([
      { clientId: 'a', score: 0.75, share: 0.6, rounds: 2 },
      { clientId: 'b', score: 0.5, share: 0.4, rounds: 2 },
      { clientId: 'c', score: -0.125, share: 0, rounds: 2 },
    ]);
  });

  it('private: estimates clients from cohort values by least squares on membership', () => {
    const truth: Record<string, number> = { a: 0.4, b: 0.2, c: 0, d: -0.2 };
    const cohorts = [
      [
        ['a', 'b'],
        ['c', 'd'],
      ],
      [
        ['a', 'c'],
        ['b', 'd'],
      ],
      [
        ['a', 'd'],
        ['b', 'c'],
      ],
    ];
    const rounds = cohorts.map((pair, i) =>
      round(
        i + 1,
        pair.map((m) => [m, m.reduce((s, x) => s + truth[x], 0)] as [string[], number]),
      ),
    );
    const report = buildContributionReport(job('secagg'), rounds, true);
    expect(report.method).toBe('cohort-shapley-least-squares');
    const score = new Map(report.clients.map((c) => [c.clientId, c]));
    expect(score.get('a')!.score).toBeCloseTo(1.2, 4);
    expect(score.get('d')!.score).toBeCloseTo(-0.6, 4);
    expect(score.get('d')!.share).toBe(0);
    expect(score.get('a')!.share).toBeCloseTo(2 / 3, 4);
  });

  it('private: pays the estimate minus lowerBoundSigmas standard errors; 0 sigmas pays the estimate', () => {
    const ids = ['a', 'b', 'c', 'd'];
    const pairs = [
      [
        ['a', 'b'],
        ['c', 'd'],
      ],
      [
        ['a', 'c'],
        ['b', 'd'],
      ],
      [
        ['a', 'd'],
        ['b', 'c'],
      ],
    ];
    // Noisy cohort values: a is worth 0.3, the others 0.1, plus a deterministic wobble.
    const rounds = Array.from({ length: 12 }, (_, r) => ({
      method: 'exact' as const,
      metric: 'loss' as const,
      baseline: -1,
      improvement: 0.6,
      evaluations: 4,
      values: pairs[r % 3].map((members, k) => ({
        members,
        value: members.reduce((s, m) => s + (m === 'a' ? 0.3 : 0.1), 0) + (k === 0 ? 0.02 : -0.02) * Math.sin(r + 1),
      })),
    }));
    const cautious = new Map(privateScores(rounds, 2).map((e) => [e.clientId, e]));
    const plain = new Map(privateScores(rounds, 0).map((e) => [e.clientId, e]));
    for (const id of ids) {
      expect(plain.get(id)!.score).toBeCloseTo(plain.get(id)!.estimate, 12);
      expect(cautious.get(id)!.standardError).toBeGreaterThan(0);
      expect(cautious.get(id)!.score).toBeCloseTo(
        cautious.get(id)!.estimate - 2 * cautious.get(id)!.standardError * 12,
        12,
      );
    }
    expect(plain.get('a')!.estimate).toBeCloseTo(12 * 0.3, 1);
    expect(plain.get('b')!.estimate).toBeCloseTo(12 * 0.1, 1);
  });

  it('says scoring is skipped when the job has no validation set', () => {
    const report = buildContributionReport(job('none'), [round(1, [])], false);
    expect(report.status).toBe('skipped');
    expect(report.reason).toMatch(/no validation set/);
    expect(report.clients).toEqual([]);
    expect(report.unscoredRounds).toEqual([1]);
  });
});
