import type { NamedTensor } from '../../shared/codec/tensors';
import { selectBackend } from '../../shared/ml/backend';
import { ContributionOptionsSchema } from '../../shared/schemas/jobSpec';
import { PLANTED_CLIENTS, simulatePlantedFederation } from '../../test/support/plantedFederation';
import { fedAvgStep } from './coalitionUtility';
import { scoreRound, type RoundPlayer } from './roundScoring';
import { spearman } from './shapley';

jest.setTimeout(60_000);

const previous: NamedTensor[] = [{ name: 'w', shape: [2], data: Float32Array.from([1, -1]) }];
/** A player that moves the model by `delta` with `n` examples. */
const player = (id: string, delta: [number, number], n: number): RoundPlayer => ({
  members: [id],
  updates: { weightedDeltaSum: [Float64Array.from(delta, (d) => d * n)], totalWeight: n, clientCount: 1 },
});
/** Higher is better: minus the distance to the target [2, 0]. */
const metric = async (w: readonly NamedTensor[]) => -Math.hypot(w[0].data[0] - 2, w[0].data[1]);

describe('fedAvgStep', () => {
  it("applies the example-weighted mean of the players' deltas; no players leave the model as it was", () => {
    const step = fedAvgStep(previous, [player('a', [1, 1], 3).updates, player('b', [-1, 0], 1).updates]);
    expect(Array.from(step[0].data)).toEqual([1.5, -0.25]);
    expect(Array.from(fedAvgStep(previous, [])[0].data)).toEqual([1, -1]);
  });
});

describe('scoreRound', () => {
  const players = [
    player('good', [1, 1], 2),
    player('half', [0.5, 0.5], 1),
    player('bad', [-1, -1], 1),
    player('idle', [0, 0], 1),
  ];

  it('exact Shapley up to exactUpTo players: efficient, ranks by usefulness, 2^n evaluations', async () => {
    const options = ContributionOptionsSchema.parse({});
    const r = await scoreRound({ previous, players, metric, options, seed: 1 });
    expect(r.method).toBe('exact');
    expect(r.metric).toBe('loss');
    expect(r.evaluations).toBe(16);
    expect(r.baseline).toBeCloseTo(-Math.SQRT2, 12);
    expect(r.values.reduce((s, v) => s + v.value, 0)).toBeCloseTo(r.improvement, 12);
    const v = Object.fromEntries(r.values.map((x) => [x.members[0], x.value]));
    expect(v.good).toBeGreaterThan(v.half);
    expect(v.half).toBeGreaterThan(v.idle);
    expect(v.bad).toBeLessThan(0);
  });

  it('GTG-Shapley above exactUpTo, within its evaluation cap', async () => {
    const options = ContributionOptionsSchema.parse({ exactUpTo: 2, maxEvaluations: 10 });
    const r = await scoreRound({ previous, players, metric, options, seed: 1 });
    expect(r.method).toBe('gtg');
    // The cap is checked between permutations: at most one permutation (n evaluations) past it, plus the baseline.
    expect(r.evaluations).toBeLessThanOrEqual(10 + players.length + 1);
  });
});

describe('GTG-Shapley on the planted federation (6 clients)', () => {
  it('agrees with exact Shapley: Spearman >= 0.95 on the accumulated scores', async () => {
    await selectBackend('cpu');
    const rounds = await simulatePlantedFederation({ rounds: 4, metric: 'loss', compareGtg: true });
    const total = (pick: (r: (typeof rounds)[number]) => { values: Array<{ members: string[]; value: number }> }) => {
      const t = new Map<string, number>();
      for (const r of rounds) for (const v of pick(r).values) t.set(v.members[0], (t.get(v.members[0]) ?? 0) + v.value);
      return PLANTED_CLIENTS.map((c) => t.get(c)!);
    };
    const exact = total((r) => r.plaintext);
    const gtg = total((r) => r.gtg!);
    const rho = spearman(exact, gtg);
    // eslint-disable-next-line no-console
    console.log(
      `GTG vs exact Shapley on 6 planted clients, 4 rounds: Spearman ${rho.toFixed(3)}; evaluations per round exact ${rounds[0].plaintext.evaluations}, GTG ${rounds.map((r) => r.gtg!.evaluations).join('/')}`,
    );
    expect(rho).toBeGreaterThanOrEqual(0.95);
  });
});
