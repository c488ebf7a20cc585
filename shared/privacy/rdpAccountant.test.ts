import { TributaryError } from '../errors';
import { DEFAULT_RDP_ORDERS, noiseFor, RdpAccountant, rdpCurve } from './rdpAccountant';
import { epsilonFromRdp } from './rdpConversion';
import { subsampledGaussianRdp } from './subsampledGaussianRdp';

/** |actual / expected - 1| <= tolerance (relative). */
function expectRelative(actual: number, expected: number, tolerance = 0.01): void {
  expect(Math.abs(actual / expected - 1)).toBeLessThanOrEqual(tolerance);
}

const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);

/** The orders of TF Privacy's compute_dp_sgd_privacy_lib.compute_dp_sgd_privacy. */
const TF_DP_SGD_ORDERS = [1.25, 1.5, 1.75, 2, 2.25, 2.5, 3, 3.5, 4, 4.5, ...range(5, 64), 128, 256, 512];
/** Opacus's DEFAULT_ALPHAS (opacus/accountants/rdp.py). */
const OPACUS_ORDERS = [...range(1, 100).map((x) => 1 + x / 10), ...range(12, 64)];

describe('subsampled Gaussian RDP against published values', () => {
  // tensorflow/privacy, tensorflow_privacy/privacy/analysis/rdp_accountant_test.py (commit 385fefc):
  // test_compute_rdp_no_data, test_compute_rdp_no_sampling, test_compute_rdp_scalar, test_compute_rdp_sequence.
  it('q = 0 costs nothing and q = 1 is the Gaussian mechanism alpha / (2 z^2)', () => {
    expect(subsampledGaussianRdp(0, 10, 20)).toBe(0);
    expect(subsampledGaussianRdp(1, 10, 20)).toBeCloseTo(0.1, 12);
  });

  it('compute_rdp(q=0.1, z=2, steps=10, order=5) = 0.07737', () => {
    expectRelative(10 * subsampledGaussianRdp(0.1, 2, 5), 0.07737, 1e-4);
  });

  it.each([
    [1.5, 6.5007e-4],
    [2.5, 1.0854e-3],
    [5, 2.1808e-3],
    [50, 2.3846e-2],
    [100, 1.6742e2],
  ])('compute_rdp(q=0.01, z=2.5, steps=50) at order %p = %p (fractional and integer orders)', (order, expected) => {
    expectRelative(50 * subsampledGaussianRdp(0.01, 2.5, order), expected, 1e-4);
  });

  // The parameter sets of TF Privacy's test_compute_log_a_equals_mp, where log A_alpha is compared with
  // a multi-precision integral of its definition. Reference values: mpmath 1.3 (mp.dps = 30),
  // log(quad(lambda x: npdf(x, 0, z) * ((1 - q) + q * exp((2x - 1) / (2 z^2)))**alpha, [-inf, 0, 1, inf])).
  it.each([
    [1e-7, 0.1, 1.01, 4.003412327842532e-8],
    [1e-6, 0.1, 256, 3260455.836904705],
    [1e-5, 0.1, 256.1, 3263603.4460756923],
    [1e-6, 1, 27, 8.769503540806863e-10],
    [1e-4, 1, 1.5, 6.442686970363956e-9],
    [1e-3, 1, 2, 1.7182803522127806e-6],
    [0.01, 10, 20, 1.9129699912825616e-4],
    [0.1, 100, 20.5, 1.9991818458125194e-4],
    [0.99, 0.1, 256, 3263990.0347215654],
    [0.999, 100, 256.1, 3.260108037973113],
  ])('log A(q=%p, z=%p, alpha=%p) matches the multi-precision integral', (q, z, alpha, logA) => {
    expectRelative(subsampledGaussianRdp(q, z, alpha) * (alpha - 1), logA, 1e-4);
  });
});

describe('epsilon from RDP', () => {
  // rdp_accountant_test.py test_get_privacy_spent_check_target_delta: constant RDP 1.1 at orders 2..32
  // (pure DP) gives eps = 1.32783806176 at delta 1e-5 with the improved conversion, at order 32.
  it('constant RDP gives the published epsilon at the largest order', () => {
    const orders = range(2, 33);
    const result = epsilonFromRdp(
      orders,
      orders.map(() => 1.1),
      1e-5,
    );
    expectRelative(result.epsilon, 1.32783806176, 1e-9);
    expect(result.order).toBe(32);
  });

  // Same test, second part: z = 4.530877117 is exactly (1, 1e-6)-DP for the Gaussian mechanism.
  it('the Gaussian mechanism calibrated to (1, 1e-6) reads epsilon 1 on a fine grid of orders', () => {
    const fine = range(1001, 100000).map((i) => i / 1000);
    expectRelative(new RdpAccountant(fine).step(1, 4.530877117).epsilon(1e-6), 1, 1e-6);
  });

  it('the improved conversion is never worse than Mironov 2017 Prop. 3', () => {
    const rdp = rdpCurve(0.05, 1.3, DEFAULT_RDP_ORDERS).map((r) => r * 200);
    const improved = epsilonFromRdp(DEFAULT_RDP_ORDERS, rdp, 1e-5).epsilon;
    const classic = epsilonFromRdp(DEFAULT_RDP_ORDERS, rdp, 1e-5, 'mironov').epsilon;
    expect(improved).toBeLessThan(classic);
  });
});

describe('RdpAccountant against published DP-SGD and DP-FedAvg figures', () => {
  // tensorflow_privacy/privacy/analysis/compute_dp_sgd_privacy_test.py (commit 2cd46db), test_compute_dp_sgd_privacy:
  // (n, batch_size, noise_multiplier, epochs, delta) -> (eps, optimal order), with q = batch / n and
  // steps = ceil(epochs * n / batch) on compute_dp_sgd_privacy's orders.
  it.each([
    [60000, 150, 1.3, 15, 1e-5, 0.7242234026109595, 19],
    [100000, 100, 1.0, 30, 1e-7, 1.4154988495444842, 13],
    [100000000, 1024, 0.1, 10, 1e-7, 5907982.3113978775, 1.25],
  ])(
    'compute_dp_sgd_privacy(n=%p, batch=%p, z=%p, epochs=%p, delta=%p) = %p at order %p',
    (n, batch, z, epochs, delta, eps, order) => {
      const accountant = new RdpAccountant(TF_DP_SGD_ORDERS).step(batch / n, z, Math.ceil((epochs * n) / batch));
      const result = accountant.epsilonAtOrder(delta);
      expectRelative(result.epsilon, eps, 1e-6);
      expect(result.order).toBe(order);
    },
  );

  // pytorch/opacus, opacus/tests/accountants_test.py, test_rdp_accountant: z = 1.5, q = 0.04,
  // steps = int(90 / 0.04) gives eps = 7.32911117143 at delta 1e-5 (Opacus's default orders).
  it('Opacus: z = 1.5, q = 0.04, 2250 steps -> eps 7.329 at delta 1e-5', () => {
    expectRelative(new RdpAccountant(OPACUS_ORDERS).step(0.04, 1.5, 2250).epsilon(1e-5), 7.32911117143, 1e-6);
  });

  // Same file, test_get_noise_multiplier: eps 8, delta 1e-5, q 0.04, 90 epochs -> z = 1.425307617
  // (Opacus stops its search within 0.01 of the target epsilon, we within 0.01 % of z).
  it('Opacus: noise for eps 8 over 2250 steps at q = 0.04 is z = 1.4253 (within 1 %)', () => {
    const z = noiseFor(8, 1e-5, 0.04, 2250, OPACUS_ORDERS);
    expectRelative(z, 1.425307617, 0.01);
    expect(new RdpAccountant(OPACUS_ORDERS).step(0.04, z, 2250).epsilon(1e-5)).toBeLessThanOrEqual(8);
  });

  // Abadi et al. 2016, "Deep Learning with Differential Privacy", Sec. 3.1: q = 0.01, sigma = 4,
  // delta = 1e-5, T = 10000 gives eps ~ 1.26 with the moments accountant (integer moments
  // lambda <= 32, i.e. RDP orders 2..33, and the tail bound that equals Mironov's Prop. 3).
  it('Abadi et al. 2016: q = 0.01, sigma = 4, 10000 steps -> eps 1.26 with the moments accountant', () => {
    const orders = range(2, 34);
    const rdp = rdpCurve(0.01, 4, orders).map((r) => r * 10000);
    expectRelative(epsilonFromRdp(orders, rdp, 1e-5, 'mironov').epsilon, 1.26, 0.01);
    // The improved conversion and the finer default grid only tighten it.
    expect(new RdpAccountant().step(0.01, 4, 10000).epsilon(1e-5)).toBeLessThan(1.26);
  });
});

describe('RdpAccountant state, resume and budget', () => {
  it('a resumed accountant continues from the spent budget exactly', () => {
    const straight = new RdpAccountant().step(0.2, 1.1, 30);
    const first = new RdpAccountant().step(0.2, 1.1, 10);
    const stored = JSON.parse(JSON.stringify(first.toState()));
    const resumed = RdpAccountant.fromState(stored).step(0.2, 1.1, 20);
    expect(resumed.rounds).toBe(30);
    expect(resumed.epsilon(1e-5)).toBeCloseTo(straight.epsilon(1e-5), 10);
    expect(resumed.epsilon(1e-5)).toBeGreaterThan(first.epsilon(1e-5));
    // A fresh accountant would have forgotten the first 10 rounds.
    expect(new RdpAccountant().step(0.2, 1.1, 20).epsilon(1e-5)).toBeLessThan(resumed.epsilon(1e-5) * 0.9);
  });

  it('composes rounds with different sampling rates and noise by adding RDP', () => {
    const mixed = new RdpAccountant().step(0.1, 1, 5).step(0.5, 2, 3);
    const first = rdpCurve(0.1, 1, DEFAULT_RDP_ORDERS);
    const second = rdpCurve(0.5, 2, DEFAULT_RDP_ORDERS);
    const rdp = mixed.toState().rdp;
    for (let i = 0; i < rdp.length; i++) expect(rdp[i]).toBeCloseTo(5 * first[i] + 3 * second[i], 12);
    expect(mixed.rounds).toBe(8);
  });

  it('refuses a malformed stored state with VALIDATION_FAILED', () => {
    const good = new RdpAccountant().step(0.1, 1).toState();
    for (const bad of [
      { ...good, rdp: good.rdp.slice(1) },
      { ...good, rdp: good.rdp.map((r, i) => (i === 3 ? -1 : r)) },
      { ...good, rounds: -1 },
      { ...good, orders: good.orders.map((a, i) => (i === 0 ? 1 : a)) },
      { ...good, extra: true },
      null,
    ]) {
      expect(() => RdpAccountant.fromState(bad)).toThrow(TributaryError);
      try {
        RdpAccountant.fromState(bad);
      } catch (err) {
        expect((err as TributaryError).code).toBe('VALIDATION_FAILED');
      }
    }
  });

  it('roundsWithin stops exactly before the round that would exceed the budget, also after a resume', () => {
    const delta = 1e-5;
    const accountant = new RdpAccountant();
    const k = accountant.roundsWithin(3, delta, 0.3, 2.5);
    expect(k).toBeGreaterThan(5);
    expect(new RdpAccountant().step(0.3, 2.5, k).epsilon(delta)).toBeLessThanOrEqual(3);
    expect(new RdpAccountant().step(0.3, 2.5, k + 1).epsilon(delta)).toBeGreaterThan(3);
    // After spending 5 rounds, exactly k - 5 remain.
    const resumed = RdpAccountant.fromState(new RdpAccountant().step(0.3, 2.5, 5).toState());
    expect(resumed.roundsWithin(3, delta, 0.3, 2.5)).toBe(k - 5);
    // A budget smaller than one round: none.
    expect(new RdpAccountant().roundsWithin(0.01, delta, 1, 1)).toBe(0);
    expect(new RdpAccountant().roundsWithin(1, delta, 0, 1)).toBe(Infinity);
  });

  it('noiseFor finds the smallest noise that fits the budget (bisection, within 0.01 %)', () => {
    for (const [epsilon, q, rounds] of [
      [1, 1, 10],
      [3, 0.5, 20],
      [8, 0.05, 500],
    ]) {
      const z = noiseFor(epsilon, 1e-5, q, rounds);
      expect(new RdpAccountant().step(q, z, rounds).epsilon(1e-5)).toBeLessThanOrEqual(epsilon);
      expect(new RdpAccountant().step(q, z * 0.999, rounds).epsilon(1e-5)).toBeGreaterThan(epsilon);
    }
  });

  it('noiseFor refuses a budget no noise multiplier up to 10,000 can meet', () => {
    try {
      noiseFor(1e-4, 1e-10, 1, 10_000);
      throw new Error('expected a refusal');
    } catch (err) {
      expect((err as TributaryError).code).toBe('PRIVACY_BUDGET_UNREACHABLE');
    }
  });

  it('stays non-negative at the smallest sampling rate a spec allows, so such a budget is planned, not refused', () => {
    // maxClients 100 of a population of 1e9: q = 1e-7. At z = 1000 the series cancelled to -9e-19.
    expect(rdpCurve(1e-7, 1000, DEFAULT_RDP_ORDERS).every((r) => r >= 0)).toBe(true);
    const z = noiseFor(1, 1e-12, 1e-7, 10_000);
    expect(z).toBeGreaterThan(0);
    expect(z).toBeLessThan(1000);
  });
});
