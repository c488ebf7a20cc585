/** One observation: the summed contribution of a group of clients (a cohort's Shapley value in one round). */
export interface GroupValue {
  members: readonly string[];
  value: number;
}

export interface MembershipEstimate {
  clientId: string;
  /** Estimated contribution per round taken part in. */
  perRound: number;
  /** Standard error of `perRound` (from the residuals; 0 when there are no more observations than clients). */
  standardError: number;
  /** The client's estimated total: perRound × rounds. */
  total: number;
  /** Observations (cohort rounds) the client took part in. */
  rounds: number;
}

/**
 * Estimates each client's per-round contribution x_i from group values alone, by least squares on
 * membership: minimise Σ_g (v_g - Σ_{i∈g} x_i)^2 + λ Σ_i x_i^2. Cohorts are re-drawn every round, so
 * over rounds the membership matrix gets full rank and the individual values become identifiable
 * (a client that is always grouped with the same others never separates from them: the small ridge
 * term λ then splits their sum equally).
 *
 * Signed, not non-negative, least squares on purpose: a harmful client (noise, zeros) has a negative
 * true value; NNLS would pin it at 0 and push the rest of its cohorts' losses onto its honest
 * cohort-mates. Payouts clip at zero later, so a negative estimate simply earns nothing.
 * Solved through the normal equations by Cholesky (n×n, n = distinct clients); standard errors from
 * σ² (AᵀA)⁻¹ with σ² = RSS / (groups - clients).
 */
export function membershipLeastSquares(groups: readonly GroupValue[], ridge = 1e-6): MembershipEstimate[] {
  const ids = [...new Set(groups.flatMap((g) => g.members))].sort();
  const n = ids.length;
  if (n === 0) return [];
  const index = new Map(ids.map((id, i) => [id, i]));
  const ata = new Float64Array(n * n);
  const atv = new Float64Array(n);
  const rounds = new Array<number>(n).fill(0);
  const rows: Array<{ members: number[]; value: number }> = [];
  for (const g of groups) {
    if (!Number.isFinite(g.value)) continue;
    const members = [...new Set(g.members)].map((m) => index.get(m)!);
    rows.push({ members, value: g.value });
    for (const i of members) {
      rounds[i]++;
      atv[i] += g.value;
      for (const j of members) ata[i * n + j] += 1;
    }
  }
  // λ relative to the typical diagonal keeps the system positive definite without biasing identified values.
  let trace = 0;
  for (let i = 0; i < n; i++) trace += ata[i * n + i];
  const lambda = ridge * (trace > 0 ? trace / n : 1);
  for (let i = 0; i < n; i++) ata[i * n + i] += lambda;
  const factor = cholesky(ata, n);
  const x = choleskySolve(factor, atv, n);
  let rss = 0;
  for (const r of rows) rss += (r.value - r.members.reduce((s, i) => s + x[i], 0)) ** 2;
  const dof = rows.length - n;
  const sigma2 = dof > 0 ? rss / dof : 0;
  return ids.map((clientId, i) => {
    const unit = new Float64Array(n);
    unit[i] = 1;
    const inverseDiagonal = choleskySolve(factor, unit, n)[i];
    return {
      clientId,
      perRound: x[i],
      standardError: Math.sqrt(sigma2 * inverseDiagonal),
      total: x[i] * rounds[i],
      rounds: rounds[i],
    };
  });
}

/** The lower Cholesky factor L (row-major) of a symmetric positive definite n×n matrix. */
function cholesky(a: Float64Array, n: number): Float64Array {
  const l = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    let d = a[j * n + j];
    for (let k = 0; k < j; k++) d -= l[j * n + k] ** 2;
    if (!(d > 0)) throw new RangeError('membership matrix is not positive definite');
    const root = Math.sqrt(d);
    l[j * n + j] = root;
    for (let i = j + 1; i < n; i++) {
      let s = a[i * n + j];
      for (let k = 0; k < j; k++) s -= l[i * n + k] * l[j * n + k];
      l[i * n + j] = s / root;
    }
  }
  return l;
}

/** Solves L Lᵀ x = b. */
function choleskySolve(l: Float64Array, b: Float64Array, n: number): Float64Array {
  const y = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let s = b[i];
    for (let k = 0; k < i; k++) s -= l[i * n + k] * y[k];
    y[i] = s / l[i * n + i];
  }
  const x = new Float64Array(n);
  for (let i = n - 1; i >= 0; i--) {
    let s = y[i];
    for (let k = i + 1; k < n; k++) s -= l[k * n + i] * x[k];
    x[i] = s / l[i * n + i];
  }
  return x;
}
