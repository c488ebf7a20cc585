import { SecAggOptionsSchema } from '../schemas/jobSpec';
import type { SecAggParameters } from './messages';
import { checkSessionParameters, requiredGraphParameters, secaggPolicyFor } from './policy';
import { MODULUS } from './quantize';
import { SecAggPlusServer } from './serverProtocol';
import { makeIdentities, runInMemoryRound } from './testHarness';

const params = (over: Partial<SecAggParameters> = {}): SecAggParameters => ({
  vectorLength: 11,
  neighbourCount: 6,
  threshold: 4,
  clippingRange: 8,
  quantizationRange: 2 ** 22,
  modulus: MODULUS,
  graphSeed: 'g',
  ...over,
});

describe('secaggPolicyFor', () => {
  it('takes the fewest members from cohortSize, else minClients; quantisation is fixed at 2^22', () => {
    expect(secaggPolicyFor(SecAggOptionsSchema.parse({}), 5, 11)).toEqual({
      minClients: 5,
      clippingRange: 8,
      quantizationRange: 2 ** 22,
      vectorLength: 11,
    });
    expect(
      secaggPolicyFor(SecAggOptionsSchema.parse({ cohortSize: 4, neighbourCount: 2, threshold: 2 }), 9, 11),
    ).toEqual({
      minClients: 4,
      neighbourCount: 2,
      threshold: 2,
      clippingRange: 8,
      quantizationRange: 2 ** 22,
      vectorLength: 11,
    });
    expect(Object.isFrozen(secaggPolicyFor(SecAggOptionsSchema.parse({}), 3, 1))).toBe(true);
  });

  it.each([
    ['minClients 2', () => secaggPolicyFor({ clippingRange: 8 }, 2, 1), /minClients/],
    ['cohortSize 2', () => secaggPolicyFor({ clippingRange: 8, cohortSize: 2 }, 5, 1), /cohortSize/],
    ['vectorLength 0', () => secaggPolicyFor({ clippingRange: 8 }, 3, 0), /vectorLength/],
    ['clippingRange NaN', () => secaggPolicyFor({ clippingRange: Number.NaN }, 3, 1), /clippingRange/],
    ['threshold 1.5', () => secaggPolicyFor({ clippingRange: 8, threshold: 1.5 }, 3, 1), /threshold/],
  ])('refuses %s with CONFIG_INVALID', (_name, make, pattern) => {
    expect(make).toThrow(pattern);
    expect(make).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID' }));
  });
});

describe('checkSessionParameters', () => {
  const policy = secaggPolicyFor(SecAggOptionsSchema.parse({}), 5, 11);

  it('accepts what an honest coordinator runs, and stronger thresholds', () => {
    expect(requiredGraphParameters(policy, 7)).toEqual({ neighbourCount: 6, threshold: 4 });
    expect(requiredGraphParameters(policy, 100)).toEqual({ neighbourCount: 14, threshold: 8 });
    expect(() => checkSessionParameters(policy, 7, params())).not.toThrow();
    expect(() => checkSessionParameters(policy, 7, params({ threshold: 5 }))).not.toThrow();
    expect(() => checkSessionParameters(policy, 100, params({ neighbourCount: 14, threshold: 8 }))).not.toThrow();
  });

  it.each([
    [
      '3 members where the policy says 5',
      3,
      params({ neighbourCount: 2, threshold: 2 }),
      /at least this many session members: 5, the session has 3/,
    ],
    ['a lower threshold', 7, params({ threshold: 3 }), /threshold of at least 4, the session has 3/],
    ['fewer neighbours', 100, params({ neighbourCount: 8, threshold: 8 }), /neighbour count of at least 14/],
    ['another clipping range', 7, params({ clippingRange: 100 }), /clippingRange 8, the session has 100/],
    [
      'another quantisation',
      7,
      params({ quantizationRange: 2 ** 10 }),
      /quantizationRange 4194304, the session has 1024/,
    ],
    ['another vector length', 7, params({ vectorLength: 12 }), /vectorLength 11, the session has 12/],
  ])('refuses %s with SECAGG_PARAMETERS_REFUSED', (_name, n, p, pattern) => {
    const run = () => checkSessionParameters(policy, n, p);
    expect(run).toThrow(pattern);
    expect(run).toThrow(expect.objectContaining({ code: 'SECAGG_PARAMETERS_REFUSED' }));
  });

  it('the margin rule refuses a larger graph whose threshold is a thinner majority than the spec asked for', () => {
    const strict = secaggPolicyFor({ clippingRange: 8, neighbourCount: 6, threshold: 5 }, 5, 11);
    expect(() => checkSessionParameters(strict, 9, params({ neighbourCount: 6, threshold: 5 }))).not.toThrow();
    // k 8, t 5: t and k are not below the spec's, but 2t - k = 2 < 4.
    expect(() => checkSessionParameters(strict, 9, params({ neighbourCount: 8, threshold: 5 }))).toThrow(
      /2 x threshold - neighbourCount of at least 4, the session has 2/,
    );
    // With the defaults for n = 100 (k 14, t 8, margin 2): k 20, t 11 keeps the margin; k 20, t 10 does not.
    expect(() => checkSessionParameters(policy, 100, params({ neighbourCount: 20, threshold: 11 }))).not.toThrow();
    expect(() => checkSessionParameters(policy, 100, params({ neighbourCount: 20, threshold: 10 }))).toThrow(
      expect.objectContaining({ code: 'SECAGG_PARAMETERS_REFUSED' }),
    );
  });

  it.each([
    ['no options', {}, 5],
    ['cohorts of 3', { cohortSize: 3 }, 5],
    ['a spec neighbour count', { neighbourCount: 4 }, 6],
    ['a spec neighbour count and threshold', { neighbourCount: 4, threshold: 4 }, 5],
  ])(
    'with %s, every session the coordinator builds as the job runner does is accepted',
    (_name, secagg, minClients) => {
      const options = SecAggOptionsSchema.parse(secagg ?? {});
      const vectorLength = 21;
      const policy = secaggPolicyFor(options, minClients, vectorLength);
      for (const n of [policy.minClients, 7, 12, 30]) {
        const server = new SecAggPlusServer({
          roundId: 'job1:1:0',
          clientIds: [...makeIdentities(n).keys()],
          vectorLength,
          neighbourCount: options.neighbourCount,
          threshold: options.threshold,
          quantization: { clippingRange: options.clippingRange, quantizationRange: 2 ** 22 },
          minClients: options.cohortSize === undefined ? minClients : Math.min(options.cohortSize, n),
        });
        expect(() => checkSessionParameters(policy, n, server.params)).not.toThrow();
      }
    },
  );
});

describe('modular inputs (distributed DP noise)', () => {
  const identities = makeIdentities(4);
  const ids = [...identities.keys()];
  const options = {
    roundId: 'job_m:1:0',
    clientIds: ids,
    vectorLength: 3,
    quantization: { clippingRange: 8, quantizationRange: 2 ** 22 },
    minClients: 3,
  };
  // Signed integers mod 2^32, as encodeDistributedUpdate makes them: -5, 7, -2^30 and friends.
  const values = [
    [-5, 7, -(2 ** 30)],
    [3, -9, 2 ** 29],
    [-1, 0, 2 ** 30],
    [10, 1, -(2 ** 29)],
  ];
  const inputs = new Map(ids.map((id, i) => [id, Uint32Array.from(values[i].map((v) => v >>> 0))]));

  it('are refused unless the policy says the inputs are modular, then sum exactly mod 2^32', async () => {
    const quantised = secaggPolicyFor({ clippingRange: 8 }, 3, 3);
    await expect(runInMemoryRound(options, identities, inputs, new Map(), undefined, quantised)).rejects.toThrow(
      /above quantizationRange/,
    );
    const modular = secaggPolicyFor({ clippingRange: 8 }, 3, 3, { modularInput: true });
    expect(modular.modularInput).toBe(true);
    const { result } = await runInMemoryRound(options, identities, inputs, new Map(), undefined, modular);
    const centred = Array.from(result.sum, (u) => (u >= 2 ** 31 ? u - 2 ** 32 : u));
    expect(centred).toEqual([7, -1, 0]);
  });
});
