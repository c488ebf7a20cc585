import type { PartMean } from './partMeans';

/**
 * Centered clipping (Karimireddy, He & Jaggi, "Learning from History for Byzantine Robust
 * Optimization", ICML 2021, section 4, rule (CC)): starting from the centre v_0 (the previous round's
 * mean update, so the rule has memory across rounds; zero in round one), each iteration moves
 *   v_{l+1} = v_l + (1/n) Σ_i (x_i - v_l) · min(1, tau / ||x_i - v_l||),
 * so a part, however far away, moves the centre by at most tau/n per iteration. With a fraction
 * delta < 1/2 of Byzantine parts the error is O(delta·tau) plus the honest spread (Theorem III).
 * tau trades robustness (small) against the bias a too-small radius puts on honest progress.
 * Unweighted: each part counts once.
 */
export function centeredClipping(
  parts: readonly PartMean[],
  centre: readonly Float64Array[] | undefined,
  tau: number,
  iterations: number,
): Float64Array[] {
  const n = parts.length;
  let v = parts[0].sums.map((s, t) => (centre ? Float64Array.from(centre[t]) : new Float64Array(s.length)));
  for (let l = 0; l < iterations; l++) {
    const next = v.map((t) => Float64Array.from(t));
    for (const p of parts) {
      let squared = 0;
      for (let t = 0; t < v.length; t++) {
        const s = p.sums[t];
        const c = v[t];
        for (let j = 0; j < c.length; j++) {
          const d = s[j] * p.scale - c[j];
          squared += d * d;
        }
      }
      const norm = Math.sqrt(squared);
      const clip = norm > tau ? tau / norm : 1;
      const k = clip / n;
      for (let t = 0; t < v.length; t++) {
        const s = p.sums[t];
        const c = v[t];
        const o = next[t];
        for (let j = 0; j < c.length; j++) o[j] += (s[j] * p.scale - c[j]) * k;
      }
    }
    v = next;
  }
  return v;
}
