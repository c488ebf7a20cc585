import { JobSpecSchema, type JobSpecInput } from '../../../shared/schemas/jobSpec';
import { assertEnoughParts, assertRobustRuleUsable, minimumParts } from './requirements';

const spec = (overrides: Partial<JobSpecInput>) =>
  JobSpecSchema.parse({
    name: 't',
    model: { kind: 'builtin', name: 'mlp' },
    input: { shape: [2], numClasses: 2 },
    rounds: 1,
    secureAggregation: 'none',
    ...overrides,
  });

describe('robust rule requirements', () => {
  it('states each rule’s minimum part count from its paper', () => {
    expect(minimumParts({ rule: 'median', f: 1 })).toBe(3);
    expect(minimumParts({ rule: 'trimmed-mean', f: 2 })).toBe(5);
    expect(minimumParts({ rule: 'krum', f: 1 })).toBe(5);
    expect(minimumParts({ rule: 'multi-krum', f: 2 })).toBe(7);
    expect(minimumParts({ rule: 'bulyan', f: 1 })).toBe(7);
    expect(minimumParts({ rule: 'centered-clipping', tau: 1, iterations: 1 })).toBe(1);
  });

  it('fails a round at the edge: Krum n = 2f + 2 refused, 2f + 3 accepted; Bulyan 4f + 2 refused, 4f + 3 accepted', () => {
    expect(() => assertEnoughParts({ rule: 'krum', f: 2 }, 6)).toThrow(
      expect.objectContaining({ code: 'STRATEGY_TOO_FEW_UPDATES' }),
    );
    expect(() => assertEnoughParts({ rule: 'krum', f: 2 }, 7)).not.toThrow();
    expect(() => assertEnoughParts({ rule: 'bulyan', f: 2 }, 10)).toThrow(/at least 11/);
    expect(() => assertEnoughParts({ rule: 'bulyan', f: 2 }, 11)).not.toThrow();
    expect(() => assertEnoughParts({ rule: 'multi-krum', f: 0, m: 4 }, 3)).toThrow(/m = 4/);
  });

  it('accepts a job without a robust rule in any mode', () => {
    expect(() => assertRobustRuleUsable(spec({ secureAggregation: 'secagg' }), undefined)).not.toThrow();
  });

  it('refuses a robust rule where the mode shows only the sum (paillier, secagg without cohorts)', () => {
    const s = spec({
      secureAggregation: 'secagg',
      minClients: 9,
      strategy: { name: 'fedavg', robust: { rule: 'median' } },
    });
    expect(() => assertRobustRuleUsable(s, undefined)).toThrow(
      expect.objectContaining({
        code: 'JOB_SPEC_INVALID',
        message: expect.stringMatching(/without secagg\.cohortSize/),
      }),
    );
  });

  it('refuses a rule that a round of minClients clients cannot satisfy, counting cohorts under secagg', () => {
    const krum = { name: 'fedavg' as const, robust: { rule: 'krum' as const, f: 1 } };
    expect(() =>
      assertRobustRuleUsable(spec({ minClients: 4, strategy: krum }), { kind: 'client', membersPerPart: 1 }),
    ).toThrow(
      expect.objectContaining({
        code: 'JOB_SPEC_INVALID',
        message: expect.stringMatching(/Raise minClients to at least 5/),
      }),
    );
    expect(() =>
      assertRobustRuleUsable(spec({ minClients: 5, strategy: krum }), { kind: 'client', membersPerPart: 1 }),
    ).not.toThrow();
    // cohorts of 3: 12 clients give 4 cohorts (< 5); 15 give 5
    const cohorts = (minClients: number) =>
      spec({ secureAggregation: 'secagg', minClients, secagg: { cohortSize: 3 }, strategy: krum });
    expect(() => assertRobustRuleUsable(cohorts(12), { kind: 'cohort', membersPerPart: 3 })).toThrow(
      /gives 4 \(cohorts of 3\)\. Raise minClients to at least 15/,
    );
    expect(() => assertRobustRuleUsable(cohorts(15), { kind: 'cohort', membersPerPart: 3 })).not.toThrow();
    const multi = { name: 'fedavg' as const, robust: { rule: 'multi-krum' as const, f: 0, m: 6 } };
    expect(() =>
      assertRobustRuleUsable(spec({ minClients: 5, strategy: multi }), { kind: 'client', membersPerPart: 1 }),
    ).toThrow(/m = 6 <= n/);
  });
});
