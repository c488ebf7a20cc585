import { privacyPlanOf } from '../../shared/aggregation/privateUpdate';
import { seededRandom } from '../../shared/privacy/randomSource';
import { RdpAccountant } from '../../shared/privacy/rdpAccountant';
import { JobSpecSchema, type JobSpecInput } from '../../shared/schemas/jobSpec';
import type { Revealed } from '../aggregation/aggregationMode';
import { createNoneMode } from '../aggregation/none/noneMode';
import { createPaillierMode } from '../aggregation/paillier/paillierMode';
import { createSecAggMode } from '../aggregation/secagg/secaggMode';
import { assertPrivacyHonoured, initialPrivacyState, JobPrivacy } from './jobPrivacy';

const spec = (overrides: Partial<JobSpecInput> = {}) =>
  JobSpecSchema.parse({
    name: 'dp',
    model: { kind: 'builtin', name: 'mlp' },
    input: { shape: [2], numClasses: 2 },
    rounds: 4,
    minClients: 3,
    maxClients: 10,
    secureAggregation: 'secagg',
    privacy: { epsilon: 5, delta: 1e-3, clippingNorm: 1, noiseMultiplier: 1.5 },
    ...overrides,
  });

const revealed = (noised: boolean, values = [1, 2, 3]): Revealed => ({
  sum: { weightedDeltaSum: [Float64Array.from(values)], totalWeight: 3, clientCount: 3 },
  participants: ['a', 'b', 'c'],
  failures: [],
  parts: [
    { members: ['a'], updates: { weightedDeltaSum: [Float64Array.from(values)], totalWeight: 1, clientCount: 1 } },
  ],
  partKind: 'cohort',
  privacy: { unclippedCount: 2, noised },
});

describe('JobPrivacy', () => {
  it('continues from a stored state: a job resumed after two rounds has spent what three rounds cost after one more', () => {
    const plan = privacyPlanOf(spec(), 3)!;
    const first = new JobPrivacy(plan, initialPrivacyState(plan), seededRandom('a'));
    first.privatise(revealed(false), 1);
    first.privatise(revealed(false), 0.5);
    // What the runner persisted, read back by a new coordinator.
    const resumed = new JobPrivacy(plan, JSON.parse(JSON.stringify(first.state())), seededRandom('b'));
    const { record } = resumed.privatise(revealed(false), 1);
    const expected = new RdpAccountant().step(1, plan.noiseMultiplier).step(0.5, plan.noiseMultiplier);
    expected.step(1, plan.noiseMultiplier);
    expect(record.rounds).toBe(3);
    expect(record.epsilon).toBeCloseTo(expected.epsilon(plan.delta), 12);
    // A fresh start would report one round's epsilon: the resumed one is larger.
    expect(record.epsilon).toBeGreaterThan(new RdpAccountant().step(1, plan.noiseMultiplier).epsilon(plan.delta));
  });

  it('says when one more round at the real sampling rate would exceed the budget', () => {
    const plan = privacyPlanOf(spec({ rounds: 100 }), 3)!;
    const privacy = new JobPrivacy(plan, initialPrivacyState(plan), seededRandom('c'));
    const fits = new RdpAccountant().roundsWithin(plan.epsilon, plan.delta, 1, plan.noiseMultiplier);
    for (let k = 0; k < fits; k++) {
      expect(privacy.exhaustedAt(1)).toBeNull();
      privacy.privatise(revealed(false), 1);
    }
    const exhausted = privacy.exhaustedAt(1);
    expect(exhausted).toMatchObject({
      code: 'PRIVACY_BUDGET_EXHAUSTED',
      details: { rounds: fits, epsilon: 5, samplingRate: 1 },
    });
    expect(exhausted!.message).toMatch(new RegExp(`in ${fits} round\\(s\\)`));
    // A smaller sampling rate costs less: another round may still fit.
    expect(privacy.exhaustedAt(0.01)).toBeNull();
  });

  it('noises a central sum and drops its parts; leaves a distributed (already noised) sum as the clients noised it', () => {
    const central = privacyPlanOf(spec(), 3)!;
    const c = new JobPrivacy(central, initialPrivacyState(central), seededRandom('d')).privatise(revealed(false), 1);
    expect(Array.from(c.revealed.sum.weightedDeltaSum[0])).not.toEqual([1, 2, 3]);
    expect(c.revealed.parts).toBeUndefined();
    expect(c.revealed.partKind).toBeUndefined();
    expect(c.revealed.privacy).toBeUndefined();
    expect(c.record).toMatchObject({ noise: 'central', clippingNorm: 1, samplingRate: 1, rounds: 1 });

    const distributed = privacyPlanOf(
      spec({ privacy: { epsilon: 5, delta: 1e-3, clippingNorm: 1, noise: 'distributed' } }),
      3,
    )!;
    const d = new JobPrivacy(distributed, initialPrivacyState(distributed), seededRandom('e')).privatise(
      revealed(true),
      1,
    );
    expect(Array.from(d.revealed.sum.weightedDeltaSum[0])).toEqual([1, 2, 3]);
    // The noised count is reported as it came: 2 of 3 unclipped.
    expect(d.record.clippedFraction).toBeCloseTo(1 / 3, 12);
    expect(d.revealed.parts).toBeUndefined();
  });

  it('refuses a sum whose noise does not match the plan, or that lacks the unclipped count', () => {
    const plan = privacyPlanOf(spec(), 3)!;
    const privacy = new JobPrivacy(plan, initialPrivacyState(plan), seededRandom('f'));
    expect(() => privacy.privatise(revealed(true), 1)).toThrow(expect.objectContaining({ code: 'INTERNAL' }));
    const { privacy: _p, ...bare } = revealed(false);
    expect(() => privacy.privatise(bare, 1)).toThrow(expect.objectContaining({ code: 'INTERNAL' }));
    // Neither charged the budget.
    expect(privacy.state().accountant.rounds).toBe(0);
  });

  it('refuses a stored state that is not an accountant state or a usable norm', () => {
    const plan = privacyPlanOf(spec(), 3)!;
    const good = initialPrivacyState(plan);
    expect(() => new JobPrivacy(plan, { ...good, clippingNorm: -1 })).toThrow(
      expect.objectContaining({ code: 'VALIDATION_FAILED' }),
    );
    expect(() => new JobPrivacy(plan, { ...good, accountant: { orders: [2], rdp: [0, 1], rounds: 0 } })).toThrow(
      expect.objectContaining({ code: 'VALIDATION_FAILED' }),
    );
  });
});

describe('assertPrivacyHonoured', () => {
  it('accepts every noise a mode can add and refuses the others, and robust rules under DP', () => {
    const central = spec({ privacy: { epsilon: 5, clippingNorm: 1 } });
    const distributed = spec({ privacy: { epsilon: 5, clippingNorm: 1, noise: 'distributed' } });
    for (const mode of [createNoneMode(), createSecAggMode(), createPaillierMode()]) {
      expect(() => assertPrivacyHonoured(central, mode)).not.toThrow();
    }
    expect(() => assertPrivacyHonoured(distributed, createSecAggMode())).not.toThrow();
    for (const mode of [createNoneMode(), createPaillierMode()]) {
      expect(() => assertPrivacyHonoured(distributed, mode)).toThrow(
        expect.objectContaining({
          code: 'JOB_SPEC_INVALID',
          message: expect.stringMatching(/can add "central" noise/),
        }),
      );
    }
    expect(() => assertPrivacyHonoured(central, { name: 'x-plain' })).toThrow(/cannot honour a privacy block/);
    const robust = spec({
      secureAggregation: 'none',
      strategy: { name: 'fedavg', robust: { rule: 'median' } },
      privacy: { epsilon: 5, clippingNorm: 1 },
    });
    expect(() => assertPrivacyHonoured(robust, createNoneMode())).toThrow(/releases only the noised sum/);
    expect(() => assertPrivacyHonoured(spec({ privacy: undefined }), { name: 'x-plain' })).not.toThrow();
  });
});
