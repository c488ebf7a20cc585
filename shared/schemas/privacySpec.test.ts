import type { TributaryError } from '../errors';
import { RdpAccountant } from '../privacy/rdpAccountant';
import { assertPrivacyUsable, defaultDelta, type PrivacyJobContext } from './privacySpec';

const job = (privacy: unknown, overrides: Partial<PrivacyJobContext> = {}): PrivacyJobContext => ({
  rounds: 20,
  minClients: 3,
  maxClients: 100,
  fractionFit: 1,
  secureAggregation: 'secagg',
  privacy,
  ...overrides,
});

function refusal(fn: () => unknown): TributaryError {
  try {
    fn();
  } catch (err) {
    return err as TributaryError;
  }
  throw new Error('expected a refusal');
}

describe('privacy spec', () => {
  it('is optional: no block, no plan', () => {
    expect(assertPrivacyUsable(job(undefined))).toBeUndefined();
  });

  it('derives the noise from the budget and the planned rounds, and the defaults', () => {
    const plan = assertPrivacyUsable(job({ epsilon: 3, clippingNorm: 0.5, population: 400 }, { fractionFit: 0.1 }));
    if (!plan) throw new Error('expected a plan');
    expect(plan.noise).toBe('central');
    expect(plan.delta).toBeCloseTo(defaultDelta(400), 15);
    expect(plan.delta).toBeCloseTo(1 / 400 ** 1.1, 15);
    expect(plan.expectedClientsPerRound).toBe(40);
    expect(plan.samplingRate).toBeCloseTo(0.1, 15);
    expect(plan.noiseMultiplierSource).toBe('derived');
    // 20 rounds at the planned rate fit the budget with the derived z; 5 % less noise would not.
    expect(new RdpAccountant().step(0.1, plan.noiseMultiplier, 20).epsilon(plan.delta)).toBeLessThanOrEqual(3);
    expect(new RdpAccountant().step(0.1, plan.noiseMultiplier * 0.95, 20).epsilon(plan.delta)).toBeGreaterThan(3);
    expect(plan.plannedRounds).toBeGreaterThanOrEqual(20);
    // sigma_b = max(m / 20, 5 z); the update noise is a little above z (Andrew et al. Sec. 3).
    expect(plan.clippedCountNoise).toBeCloseTo(Math.max(2, 5 * plan.noiseMultiplier), 12);
    expect(plan.updateNoiseMultiplier).toBeGreaterThan(plan.noiseMultiplier);
    expect(plan.updateNoiseMultiplier).toBeLessThan(plan.noiseMultiplier * 1.006);
    expect(plan.clipping).toEqual({ mode: 'fixed', norm: 0.5 });
    expect(plan.minContributors).toBe(3);
  });

  it('without a population plans for maxClients clients, all of them every round (q = 1)', () => {
    const plan = assertPrivacyUsable(job({ epsilon: 8, adaptiveClipping: {} }, { maxClients: 50 }));
    expect(plan?.population).toBe(50);
    expect(plan?.samplingRate).toBe(1);
    expect(plan?.delta).toBeCloseTo(1 / 50 ** 1.1, 15);
    expect(plan?.clipping).toEqual({ mode: 'adaptive', targetQuantile: 0.5, learningRate: 0.2, initialNorm: 0.1 });
  });

  it('refuses an epsilon that one round at the given noise already exceeds (PRIVACY_BUDGET_UNREACHABLE)', () => {
    const err = refusal(() => assertPrivacyUsable(job({ epsilon: 0.5, clippingNorm: 1, noiseMultiplier: 0.8 })));
    expect(err.code).toBe('PRIVACY_BUDGET_UNREACHABLE');
    expect(err.message).toMatch(/one round at noiseMultiplier 0.8/);
    // The same noise with a budget that covers a round is accepted, and says how many rounds it covers.
    const plan = assertPrivacyUsable(job({ epsilon: 30, clippingNorm: 1, noiseMultiplier: 0.8 }));
    expect(plan?.noiseMultiplierSource).toBe('spec');
    expect(plan?.plannedRounds).toBeGreaterThanOrEqual(1);
    expect(plan?.plannedRounds).toBeLessThan(20); // the job will stop early, with its reason
  });

  it('refuses a clipped-count noise that alone would spend the budget', () => {
    const err = refusal(() =>
      assertPrivacyUsable(job({ epsilon: 3, clippingNorm: 1, noiseMultiplier: 2, clippedCountNoise: 0.5 })),
    );
    expect(err.code).toBe('PRIVACY_BUDGET_UNREACHABLE');
  });

  it.each([
    [{ epsilon: 1, clippingNorm: 0 }, 'privacy.clippingNorm'],
    [{ epsilon: 1, clippingNorm: -2 }, 'privacy.clippingNorm'],
    [{ epsilon: 1, adaptiveClipping: { initialNorm: 0 } }, 'privacy.adaptiveClipping.initialNorm'],
    [{ epsilon: 1, adaptiveClipping: { targetQuantile: 1 } }, 'privacy.adaptiveClipping.targetQuantile'],
    [{ epsilon: 0, clippingNorm: 1 }, 'privacy.epsilon'],
    [{ epsilon: 1 }, 'privacy.clippingNorm'],
    [{ epsilon: 1, clippingNorm: 1, adaptiveClipping: {} }, 'privacy.clippingNorm'],
    [{ epsilon: 1, clippingNorm: 1, noiseMultiplier: -1 }, 'privacy.noiseMultiplier'],
    [{ epsilon: 1, clippingNorm: 1, noise: 'local' }, 'privacy.noise'],
    [{ epsilon: 1, clippingNorm: 1, extra: 1 }, 'privacy.(block)'],
  ])('refuses %j with JOB_SPEC_INVALID naming %s', (privacy, path) => {
    const err = refusal(() => assertPrivacyUsable(job(privacy)));
    expect(err.code).toBe('JOB_SPEC_INVALID');
    expect(err.message.startsWith(`${path}:`)).toBe(true);
  });

  it('refuses distributed noise without SecAgg+, and accepts it with SecAgg+ (sized for the cohort)', () => {
    for (const mode of ['none', 'paillier'] as const) {
      const err = refusal(() =>
        assertPrivacyUsable(job({ epsilon: 3, clippingNorm: 1, noise: 'distributed' }, { secureAggregation: mode })),
      );
      expect(err.code).toBe('JOB_SPEC_INVALID');
      expect(err.message).toMatch(/needs secureAggregation "secagg"/);
    }
    // Central noise works with every mode.
    expect(assertPrivacyUsable(job({ epsilon: 3, clippingNorm: 1 }, { secureAggregation: 'paillier' }))?.noise).toBe(
      'central',
    );
    const plan = assertPrivacyUsable(
      job({ epsilon: 3, clippingNorm: 1, noise: 'distributed' }, { minClients: 6, secagg: { cohortSize: 3 } }),
      { modelParameters: 101_770 },
    );
    expect(plan?.minContributors).toBe(3);
    expect(plan?.maxContributors).toBe(100);
  });

  it('refuses a delta that is not below 1 / population, and a population below minClients', () => {
    expect(refusal(() => assertPrivacyUsable(job({ epsilon: 3, clippingNorm: 1, delta: 0.01 }))).code).toBe(
      'JOB_SPEC_INVALID',
    );
    expect(refusal(() => assertPrivacyUsable(job({ epsilon: 3, clippingNorm: 1, population: 2 }))).message).toMatch(
      /privacy.population/,
    );
  });

  it('the budget stop triggers at the right round: the runner asks roundsWithin before each round', () => {
    const plan = assertPrivacyUsable(job({ epsilon: 4, clippingNorm: 1, noiseMultiplier: 1.5, population: 30 }));
    if (!plan) throw new Error('expected a plan');
    const accountant = new RdpAccountant();
    let completed = 0;
    // What the runner does: before round r, stop if the next round would exceed the budget.
    while (accountant.roundsWithin(plan.epsilon, plan.delta, plan.samplingRate, plan.noiseMultiplier) >= 1) {
      accountant.step(plan.samplingRate, plan.noiseMultiplier);
      completed++;
    }
    expect(completed).toBe(plan.plannedRounds);
    expect(accountant.epsilon(plan.delta)).toBeLessThanOrEqual(4);
    expect(
      new RdpAccountant().step(plan.samplingRate, plan.noiseMultiplier, completed + 1).epsilon(plan.delta),
    ).toBeGreaterThan(4);
  });
});
