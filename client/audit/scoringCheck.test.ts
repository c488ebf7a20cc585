import { scoreRound, type RoundPlayer } from '../../coordinator/contribution/roundScoring';
import type { RoundTranscript, ScoringTranscript } from '../../coordinator/transcript/transcriptSchema';
import type { NamedTensor } from '../../shared/codec/tensors';
import { deriveSeed } from '../../shared/data/random';
import { contributionOptionsOf, type JobSpec, JobSpecSchema, type JobSpecInput } from '../../shared/schemas/jobSpec';
import { checkScoring } from './scoringCheck';

const previous: NamedTensor[] = [{ name: 'w', shape: [2], data: Float32Array.from([1, -1]) }];
const player = (id: string, delta: [number, number], n: number): RoundPlayer => ({
  members: [id],
  updates: { weightedDeltaSum: [Float64Array.from(delta, (d) => d * n)], totalWeight: n, clientCount: 1 },
});
/** Higher is better (a loss metric: minus the distance to [2, 0]). */
const metric = async (w: readonly NamedTensor[]) => -Math.hypot(w[0].data[0] - 2, w[0].data[1]);
const players = [
  player('good', [1, 1], 2),
  player('half', [0.5, 0.5], 1),
  player('bad', [-1, -1], 1),
  player('idle', [0, 0], 1),
];
const ROUND_HASH = 'ab'.repeat(32);

const specOf = (extra: Partial<JobSpecInput> = {}): JobSpec =>
  JobSpecSchema.parse({
    name: 't',
    model: { kind: 'builtin', name: 'mlp' },
    input: { shape: [2], numClasses: 2 },
    rounds: 3,
    seed: 5,
    secureAggregation: 'none',
    ...extra,
  });

function roundTranscript(cohorts: string[][] | null = null): RoundTranscript {
  return {
    type: 'tributary/round-transcript/v1',
    coordinatorKey: 'c'.repeat(64),
    jobId: 'job_scoring',
    specHash: `0x${'d'.repeat(64)}`,
    round: 2,
    attempt: 0,
    startedAt: '',
    finishedAt: '',
    selected: players.map((p) => p.members[0]),
    participants: ['idle', 'bad', 'half', 'good'],
    failures: [],
    failedAttempts: [],
    cohorts,
    previousModelHash: 'e'.repeat(64),
    modelHash: 'f'.repeat(64),
    aggregate: { digest: '0'.repeat(64), totalWeight: 5, clientCount: 4 },
    metrics: {},
    submissions: null,
    payoutAddresses: [],
    validationSet: null,
  };
}

/** The scoring transcript the coordinator would sign for these players, and the model scores that fit it. */
async function honestScoring(spec: JobSpec, scored: RoundPlayer[] = players) {
  const utilities: ScoringTranscript['utilities'] = [];
  const c = await scoreRound({
    previous,
    players: scored,
    metric,
    options: contributionOptionsOf(spec),
    seed: deriveSeed(spec.seed, 'contribution', 2),
    onUtility: (coalition, utility) => utilities.push({ coalition: [...coalition], utility }),
  });
  const scoring: ScoringTranscript = {
    type: 'tributary/scoring-transcript/v1',
    coordinatorKey: 'c'.repeat(64),
    jobId: 'job_scoring',
    round: 2,
    attempt: 0,
    roundTranscriptHash: ROUND_HASH,
    basis: 'parts',
    seed: deriveSeed(spec.seed, 'contribution', 2),
    contribution: { ...c, values: c.values.map((v) => ({ members: [...v.members], value: v.value })) },
    utilities,
  };
  // A loss metric is -loss: the models' losses that give this baseline and improvement.
  const before = { accuracy: 0, loss: -c.baseline };
  const after = { accuracy: 0, loss: -(c.baseline + c.improvement) };
  return { scoring, before, after };
}

const check = (
  spec: JobSpec,
  scoring: ScoringTranscript,
  scores: { before: unknown; after: unknown },
  round = roundTranscript(),
) =>
  checkScoring({
    spec,
    round,
    roundHash: ROUND_HASH,
    scoring,
    before: scores.before as { accuracy: number; loss: number },
    after: scores.after as { accuracy: number; loss: number },
    tolerance: 1e-6,
  });

describe('checkScoring', () => {
  it('recomputes exact Shapley values from the signed utilities of an honest round', async () => {
    const spec = specOf();
    const honest = await honestScoring(spec);
    expect(honest.scoring.utilities).toHaveLength(16);
    const result = await check(spec, honest.scoring, honest);
    expect(result.divergences).toEqual([]);
    expect(result.notes).toEqual([]);
    expect(result.values).toEqual(honest.scoring.contribution.values.map((v) => v.value));
  });

  it("reruns GTG-Shapley with the round's seed and the spec's cap, from the utilities it evaluated", async () => {
    const spec = specOf({ contribution: { exactUpTo: 2, maxEvaluations: 12 } });
    const honest = await honestScoring(spec);
    expect(honest.scoring.contribution.method).toBe('gtg');
    expect(honest.scoring.utilities.length).toBeLessThan(16);
    const result = await check(spec, honest.scoring, honest);
    expect(result.divergences).toEqual([]);
    expect(result.values).toEqual(honest.scoring.contribution.values.map((v) => v.value));
    // Scored under another evaluation cap than the spec says: the rerun needs other utilities, or gives other values.
    const other = await honestScoring(specOf({ contribution: { exactUpTo: 2, maxEvaluations: 40 } }));
    expect((await check(spec, other.scoring, other)).divergences[0].check).toMatch(/^scoring-(utilities|values)$/);
  });

  it('catches a raised value, and a swap that keeps the sum (which only the utilities reveal)', async () => {
    const spec = specOf();
    const honest = await honestScoring(spec);
    const raised = structuredClone(honest.scoring);
    raised.contribution.values[1].value += 0.01;
    expect((await check(spec, raised, honest)).divergences[0]).toMatchObject({
      check: 'scoring-values',
      round: 2,
      claimed: expect.stringContaining('client half'),
    });
    const swapped = structuredClone(honest.scoring);
    const [a, b] = [swapped.contribution.values[0].value, swapped.contribution.values[2].value];
    swapped.contribution.values[0].value = b;
    swapped.contribution.values[2].value = a;
    expect((await check(spec, swapped, honest)).divergences[0].check).toBe('scoring-values');
  });

  it('catches a missing, impossible or duplicated utility, and a non-zero empty coalition', async () => {
    const spec = specOf();
    const honest = await honestScoring(spec);
    const cases: Array<(s: ScoringTranscript) => void> = [
      (s) => s.utilities.splice(5, 1),
      (s) => s.utilities.push({ coalition: [4], utility: 1 }),
      (s) => s.utilities.push({ ...s.utilities[3] }),
      (s) => (s.utilities.find((u) => u.coalition.length === 0)!.utility = 0.1),
    ];
    for (const edit of cases) {
      const bad = structuredClone(honest.scoring);
      edit(bad);
      const result = await check(spec, bad, honest);
      expect(result.divergences[0].check).toBe('scoring-utilities');
      expect(result.values).toBeNull();
    }
  });

  it("catches players that are not the round's contributors or cohorts, and a scoring of another round or seed", async () => {
    const spec = specOf();
    const honest = await honestScoring(spec);
    const stranger = structuredClone(honest.scoring);
    stranger.contribution.values[3].members = ['stranger'];
    expect((await check(spec, stranger, honest)).divergences[0].check).toBe('scoring-players');
    const twice = structuredClone(honest.scoring);
    twice.contribution.values[3].members = ['good'];
    expect((await check(spec, twice, honest)).divergences[0].check).toBe('scoring-players');
    // Cohort players must be the committed cohorts.
    const cohorts = [players[0], players[1]].map((p, i) => ({
      members: i === 0 ? ['good', 'bad'] : ['half', 'idle'],
      updates: p.updates,
    }));
    const byCohort = await honestScoring(spec, cohorts);
    expect(
      (
        await check(
          spec,
          byCohort.scoring,
          byCohort,
          roundTranscript([
            ['bad', 'good'],
            ['idle', 'half'],
          ]),
        )
      ).divergences,
    ).toEqual([]);
    expect(
      (
        await check(
          spec,
          byCohort.scoring,
          byCohort,
          roundTranscript([
            ['half', 'good'],
            ['idle', 'bad'],
          ]),
        )
      ).divergences[0].check,
    ).toBe('scoring-players');
    for (const edit of [
      (s: ScoringTranscript) => (s.roundTranscriptHash = '0'.repeat(64)),
      (s: ScoringTranscript) => (s.seed += 1),
      (s: ScoringTranscript) => (s.round = 3),
      (s: ScoringTranscript) => (s.contribution.metric = 'accuracy'),
    ]) {
      const bad = structuredClone(honest.scoring);
      edit(bad);
      expect((await check(spec, bad, honest)).divergences[0].check).toBe('scoring-round');
    }
  });

  it("compares the baseline with the previous model and U(all) with the committed model's improvement where the strategy makes them one model", async () => {
    const spec = specOf();
    const honest = await honestScoring(spec);
    expect(
      (await check(spec, honest.scoring, { ...honest, before: { accuracy: 0, loss: honest.before.loss + 0.01 } }))
        .divergences[0].check,
    ).toBe('scoring-baseline');
    expect(
      (await check(spec, honest.scoring, { ...honest, after: { accuracy: 0, loss: honest.after.loss + 0.01 } }))
        .divergences[0].check,
    ).toBe('scoring-improvement');
    // FedAdam's step is not the grand coalition's FedAvg step: noted, not compared.
    const adam = specOf({ strategy: { name: 'fedadam' } });
    const result = await check(adam, honest.scoring, {
      ...honest,
      after: { accuracy: 0, loss: honest.after.loss + 0.01 },
    });
    expect(result.divergences).toEqual([]);
    expect(result.notes[0]).toMatch(/strategy fedadam is not a plain FedAvg step/);
  });
});
