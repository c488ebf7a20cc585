import type { RobustRule } from '../../../shared/schemas/strategySpec';
import type { UpdatePart } from '../strategy';
import { bulyan } from './bulyan';
import { centeredClipping } from './centeredClipping';
import { coordinateMedian } from './coordinateMedian';
import { krum, multiKrum } from './krum';
import { partMeansOf } from './partMeans';
import { assertEnoughParts } from './requirements';
import { trimmedMean } from './trimmedMean';

/** A robust rule's mean update, and which parts it kept when it selects some (Krum, Multi-Krum, Bulyan). */
export interface RobustMean {
  update: Float64Array[];
  /** Members of the parts the rule selected, in selection order; absent for rules that use every part. */
  selected?: string[][];
}

/**
 * Forms the round's mean update (the server optimiser's pseudo-gradient) with a robust rule over the
 * round's parts: each client's update in plaintext, each cohort's sum under SecAgg+ with cohorts.
 * Every rule works on each part's mean update (sum / weight) and counts each part once, whatever its
 * weight: Krum's and Bulyan's guarantees are about counts of vectors, and weighting would let a client
 * that declares more examples (or a cohort that holds one) buy influence. Inside a cohort the mean is
 * still weighted (the mode only reveals the cohort's sum), so an attacker spoils at most its own
 * cohort's mean, which the rule then outvotes like a Byzantine client; f counts cohorts there.
 * The price is FedAvg's example weighting across parts: with unequal data sizes the robust mean
 * follows the typical part, not the typical example. A part with an invalid weight or non-finite
 * sums fails the round (ROUND_AGGREGATE_INVALID naming it); too few parts fail it with
 * STRATEGY_TOO_FEW_UPDATES. `centre` is centered clipping's memory (the previous round's update).
 */
export function robustMeanUpdate(
  rule: RobustRule,
  parts: readonly UpdatePart[],
  tensorLengths: readonly number[],
  centre?: readonly Float64Array[],
): RobustMean {
  const cohorts = parts.some((p) => p.members.length > 1);
  assertEnoughParts(rule, parts.length, cohorts ? 'cohorts' : 'parts');
  const means = partMeansOf(parts, tensorLengths);
  const membersOf = (selected: number[]) => selected.map((i) => [...means[i].members]);
  switch (rule.rule) {
    case 'median':
      return { update: coordinateMedian(means) };
    case 'trimmed-mean':
      return { update: trimmedMean(means, rule.f) };
    case 'krum': {
      const r = krum(means, rule.f);
      return { update: r.update, selected: membersOf(r.selected) };
    }
    case 'multi-krum': {
      const r = multiKrum(means, rule.f, rule.m);
      return { update: r.update, selected: membersOf(r.selected) };
    }
    case 'bulyan': {
      const r = bulyan(means, rule.f);
      return { update: r.update, selected: membersOf(r.selected) };
    }
    case 'centered-clipping':
      return { update: centeredClipping(means, centre, rule.tau, rule.iterations) };
  }
}
