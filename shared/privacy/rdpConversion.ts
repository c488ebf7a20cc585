import { TributaryError } from '../errors';

/** How an RDP curve becomes (epsilon, delta)-DP. */
export type RdpConversion = 'improved' | 'mironov';

/** The epsilon at a delta, and the RDP order that gave it. */
export interface EpsilonAtOrder {
  epsilon: number;
  order: number;
}

/**
 * (epsilon, delta)-DP from RDP guarantees (orders[i], rdp[i]): the smallest epsilon over the orders.
 *
 * - `improved` (default): Canonne, Kamath & Steinke 2020 ("The Discrete Gaussian for Differential
 *   Privacy", Prop. 12 in arXiv:2004.00010 v4; also Balle et al. 2020, "Hypothesis Testing
 *   Interpretations and Rényi DP", Thm. 21):
 *   epsilon = rdp + log((alpha - 1) / alpha) - (log(delta) + log(alpha)) / (alpha - 1), for alpha > 1.01
 *   (unstable closer to 1), and epsilon = 0 where delta^2 >= 1 - exp(-rdp) (the KL / Pinsker bound).
 * - `mironov`: Mironov 2017 ("Rényi Differential Privacy", Prop. 3), epsilon = rdp + log(1/delta) / (alpha - 1),
 *   which is what the moments accountant of Abadi et al. 2016 amounts to; kept to check published
 *   numbers computed with it.
 */
export function epsilonFromRdp(
  orders: readonly number[],
  rdp: readonly number[],
  delta: number,
  conversion: RdpConversion = 'improved',
): EpsilonAtOrder {
  if (orders.length !== rdp.length || orders.length === 0) {
    throw new TributaryError(
      'CONFIG_INVALID',
      `orders (${orders.length}) and rdp (${rdp.length}) must be non-empty and match`,
    );
  }
  if (!(delta > 0 && delta < 1)) throw new TributaryError('CONFIG_INVALID', `delta must be in (0, 1), got ${delta}`);
  let best: EpsilonAtOrder = { epsilon: Infinity, order: orders[0] };
  for (let i = 0; i < orders.length; i++) {
    const a = orders[i];
    const r = rdp[i];
    if (!(a > 1) || !(r >= 0)) {
      throw new TributaryError('CONFIG_INVALID', `RDP order ${a} must be > 1 and its value ${r} >= 0`);
    }
    let epsilon: number;
    if (conversion === 'mironov') {
      epsilon = r - Math.log(delta) / (a - 1);
    } else if (delta * delta + Math.expm1(-r) > 0) {
      epsilon = 0;
    } else if (a > 1.01) {
      epsilon = r + Math.log1p(-1 / a) - Math.log(delta * a) / (a - 1);
    } else {
      epsilon = Infinity;
    }
    if (epsilon < best.epsilon) best = { epsilon, order: a };
  }
  return { epsilon: Math.max(0, best.epsilon), order: best.order };
}
