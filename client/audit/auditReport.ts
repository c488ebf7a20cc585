/**
 * What `tributary audit` (and the SDK's `auditJob`) reports: every divergence between what the
 * coordinator committed, posted or signed and what the audit read or recomputed, in the order the
 * checks run (so the first one is the earliest point where the job's record stops holding together),
 * and what the audit recomputed for the settlement (an arbiter can post that root).
 */

/** The checks, in the order they run within a round; job-level checks come first or last. */
export const AUDIT_CHECKS = [
  // Job level, before any round.
  'spec-hash',
  'rounds-on-chain',
  // Per round r = 1, 2, ...: its round transcript, model and metrics...
  'transcript-missing',
  'transcript-malformed',
  'transcript-signature',
  'transcript-key',
  'transcript-hash',
  'transcript-fields',
  'model-chain',
  'model-on-chain',
  'metric-on-chain',
  'checkpoint',
  'validation-set',
  'validation-metric',
  // ...then its scoring transcript.
  'scoring-malformed',
  'scoring-signature',
  'scoring-key',
  'scoring-round',
  'scoring-players',
  'scoring-utilities',
  'scoring-values',
  'scoring-baseline',
  'scoring-improvement',
  // Job level, after every round.
  'settlement-root',
  'settlement-total',
] as const;
export type AuditCheck = (typeof AUDIT_CHECKS)[number];

/** One divergence: what was committed, posted or signed against what the audit found. */
export interface AuditDivergence {
  check: AuditCheck;
  /** The round it concerns; absent for job-level checks. */
  round?: number;
  /** What the coordinator committed on chain, posted, signed or served. */
  claimed: string;
  /** What the audit read elsewhere or recomputed. */
  found: string;
  /** One sentence a person can act on. */
  message: string;
}

/** What the audit recomputed for one round (metrics on the buyer's own validation set). */
export interface AuditedRound {
  round: number;
  transcriptHash: string | null;
  modelHash: string | null;
  /** The committed model on the buyer's validation set, recomputed; null when the checkpoint could not be evaluated. */
  accuracy: number | null;
  loss: number | null;
  /** Whether a scoring transcript of the round was checked (its values count in the settlement). */
  scored: boolean;
}

/** One recomputed payout leaf. */
export interface AuditedAllocation {
  account: string;
  amountWei: string;
  /** Merkle proof against the recomputed root (what a claim needs after an arbiter posts it). */
  proof: string[];
  clientIds: string[];
  score: number;
}

/** The settlement the audit recomputed, and what was posted on chain. */
export interface AuditedSettlement {
  /** `contribution` or `participation`, by the coordinator's own rule (settlementScores.ts). */
  scoreLabel: string;
  scores: Array<{ clientId: string; score: number }>;
  poolWei: string;
  root: string;
  totalWei: string;
  allocations: AuditedAllocation[];
  /** The root and total the coordinator posted with `settle`; null while the escrow is not settled. */
  posted: { root: string; totalWei: string } | null;
  /** The escrow's current root and total (the arbiter's after a resolved dispute). */
  current: { root: string; totalWei: string; disputed: boolean; haircut: boolean } | null;
}

export interface AuditReport {
  jobId: string;
  coordinator: string;
  /** The escrow job audited against; null for a job without a chain config. */
  escrow: { address: string; chainId: number; jobId: string; status: number } | null;
  /** True when no check diverged. */
  clean: boolean;
  firstDivergence: AuditDivergence | null;
  divergences: AuditDivergence[];
  /** Things checked less than fully, and why (not divergences). */
  notes: string[];
  /** The Ed25519 keys that signed the job's transcripts, and the one the coordinator serves now. */
  keys: { signing: string[]; served: string };
  rounds: AuditedRound[];
  settlement: AuditedSettlement | null;
}

const place = (d: AuditDivergence) => (d.round !== undefined ? `round ${d.round}, ` : '');

/** The report as text for a person: the verdict and the first divergence first, then the rest. */
export function formatAuditReport(report: AuditReport): string {
  const lines: string[] = [];
  const escrow = report.escrow
    ? ` against escrow job ${report.escrow.jobId} of ${report.escrow.address} (chain ${report.escrow.chainId})`
    : ' (no escrow: nothing on chain to compare)';
  lines.push(`audit of ${report.jobId} on ${report.coordinator}${escrow}`);
  const first = report.firstDivergence;
  if (first) {
    lines.push(
      `DIVERGED: ${report.divergences.length} divergence(s); the first (${place(first)}${first.check}): ${first.message}`,
    );
    lines.push(`  claimed: ${first.claimed}`, `  found:   ${first.found}`);
  } else {
    lines.push(`CLEAN: ${report.rounds.length} round(s), transcripts, models, metrics, scores and payouts agree`);
  }
  for (const r of report.rounds) {
    const metric =
      r.accuracy === null ? 'not evaluated' : `accuracy ${r.accuracy.toFixed(4)}, loss ${r.loss?.toFixed(4)}`;
    lines.push(`  round ${r.round}: ${metric}${r.scored ? ', scored' : ', not scored'}`);
  }
  const s = report.settlement;
  if (s) {
    lines.push(`settlement (${s.scoreLabel}): recomputed root ${s.root}, total ${s.totalWei} wei of ${s.poolWei}`);
    if (s.posted) lines.push(`  posted by the coordinator: root ${s.posted.root}, total ${s.posted.totalWei} wei`);
    if (s.current && (s.current.disputed || s.current.haircut))
      lines.push(
        `  escrow now: root ${s.current.root}, total ${s.current.totalWei} wei${s.current.haircut ? ' (dispute expired: claims halved)' : ' (disputed)'}`,
      );
    for (const a of s.allocations) lines.push(`  ${a.account}: ${a.amountWei} wei (score ${a.score})`);
  }
  for (const d of report.divergences.slice(1)) lines.push(`also (${place(d)}${d.check}): ${d.message}`);
  for (const n of report.notes) lines.push(`note: ${n}`);
  lines.push(`transcript keys: ${report.keys.signing.join(', ') || 'none'} (served now: ${report.keys.served})`);
  return lines.join('\n');
}
