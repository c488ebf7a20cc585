import { TributaryError } from '../../../shared/errors';
import type { JobSpec } from '../../../shared/schemas/jobSpec';
import type { RobustRule } from '../../../shared/schemas/strategySpec';

/** The fewest parts (clients or cohorts) a round needs for the rule's guarantee to hold. */
export function minimumParts(rule: RobustRule): number {
  switch (rule.rule) {
    case 'median':
    case 'trimmed-mean':
      // Yin et al. 2018: an honest majority of every coordinate's values (n > 2f).
      return 2 * rule.f + 1;
    case 'krum':
    case 'multi-krum':
      // Blanchard et al. 2017, Proposition 1: n > 2f + 2.
      return 2 * rule.f + 3;
    case 'bulyan':
      // El Mhamdi et al. 2018, section 4: n >= 4f + 3.
      return 4 * rule.f + 3;
    case 'centered-clipping':
      return 1;
  }
}

/** What the rule needs, in words, for messages. */
function requirementText(rule: RobustRule): string {
  switch (rule.rule) {
    case 'median':
    case 'trimmed-mean':
      return `n > 2f (f = ${rule.f})`;
    case 'krum':
    case 'multi-krum':
      return `n > 2f + 2 (f = ${rule.f})`;
    case 'bulyan':
      return `n >= 4f + 3 (f = ${rule.f})`;
    case 'centered-clipping':
      return 'n >= 1';
  }
}

/**
 * Fails the round with STRATEGY_TOO_FEW_UPDATES when `n` parts are too few for the rule (e.g. Krum
 * with n <= 2f + 2, or Multi-Krum asked to average more parts than arrived). Nothing is changed.
 */
export function assertEnoughParts(rule: RobustRule, n: number, unit = 'parts'): void {
  const needed = minimumParts(rule);
  if (n < needed) {
    throw new TributaryError(
      'STRATEGY_TOO_FEW_UPDATES',
      `Robust rule ${rule.rule} needs ${requirementText(rule)}, i.e. at least ${needed} ${unit}; the round has ${n}.`,
      { details: { rule: rule.rule, needed, received: n } },
    );
  }
  if (rule.rule === 'multi-krum' && rule.m !== undefined && rule.m > n) {
    throw new TributaryError(
      'STRATEGY_TOO_FEW_UPDATES',
      `Robust rule multi-krum averages m = ${rule.m} ${unit}; the round has ${n}.`,
      { details: { rule: rule.rule, needed: rule.m, received: n } },
    );
  }
}

/** What a job's round parts are, as its aggregation mode says (CoordinatorAggregationMode.parts). */
export interface RoundParts {
  kind: 'client' | 'cohort';
  /** Clients per part at least (1 for clients, the cohort size for cohorts). */
  membersPerPart: number;
}

/**
 * Job-creation check of `strategy.robust` (JOB_SPEC_INVALID when it fails, so nothing is stored):
 * a robust rule needs the round's parts, which only modes that see them can give (`parts`: each
 * client in plaintext, each cohort under SecAgg+ with cohorts; undefined where the coordinator sees one
 * sum), and a round of `minClients` clients must already give the rule enough parts: clients, or
 * floor(minClients / cohort size) cohorts (f then counts cohorts).
 */
export function assertRobustRuleUsable(
  spec: Pick<JobSpec, 'strategy' | 'minClients' | 'secureAggregation'>,
  parts: RoundParts | undefined,
): void {
  const rule = spec.strategy.robust;
  if (!rule) return;
  if (!parts) {
    throw new TributaryError(
      'JOB_SPEC_INVALID',
      `strategy.robust (${rule.rule}) needs each client's or each cohort's update, but aggregation mode "${spec.secureAggregation}" ` +
        "shows the coordinator only the round's sum (e.g. paillier, or secagg without secagg.cohortSize). " +
        'Use "secagg" with secagg.cohortSize (a rule over cohort means) or "none", or drop strategy.robust.',
      { details: { path: ['strategy', 'robust'] } },
    );
  }
  const cohortSize = parts.kind === 'cohort' ? parts.membersPerPart : undefined;
  const unit = cohortSize === undefined ? 'clients' : 'cohorts';
  const fewest = cohortSize === undefined ? spec.minClients : Math.max(1, Math.floor(spec.minClients / cohortSize));
  const needed = Math.max(minimumParts(rule), rule.rule === 'multi-krum' ? (rule.m ?? 1) : 1);
  if (fewest < needed) {
    const clientsNeeded = cohortSize === undefined ? needed : needed * cohortSize;
    throw new TributaryError(
      'JOB_SPEC_INVALID',
      `strategy.robust ${rule.rule} needs ${requirementText(rule)}${rule.rule === 'multi-krum' && rule.m !== undefined ? ` and m = ${rule.m} <= n` : ''}, ` +
        `at least ${needed} ${unit} per round, but a round of minClients = ${spec.minClients} gives ${fewest}` +
        `${cohortSize === undefined ? '' : ` (cohorts of ${cohortSize})`}. Raise minClients to at least ${clientsNeeded} or lower f.`,
      { details: { path: ['strategy', 'robust'], needed, fewest, unit } },
    );
  }
}
