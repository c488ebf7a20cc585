import { exactShapley, gtgShapley, type Utility } from '../../coordinator/contribution/shapley';
import type { RoundTranscript, ScoringTranscript } from '../../coordinator/transcript/transcriptSchema';
import { deriveSeed } from '../../shared/data/random';
import { contributionOptionsOf, type JobSpec } from '../../shared/schemas/jobSpec';
import type { AuditDivergence } from './auditReport';
import { differs, type ModelScore } from './tolerance';

export interface ScoringCheckInput {
  spec: JobSpec;
  round: RoundTranscript;
  /** SHA-256 of the round transcript the scoring must name. */
  roundHash: string;
  scoring: ScoringTranscript;
  /** The buyer's own evaluation of the models before and after the round (null: not evaluated). */
  before: ModelScore | null;
  after: ModelScore | null;
  tolerance: number;
}

export interface ScoringCheckResult {
  divergences: AuditDivergence[];
  /** Per-player values recomputed from the signed utilities (null when they could not be). */
  values: number[] | null;
  notes: string[];
}

/** Thrown by the table-backed utility when the Shapley routine asks for a coalition the transcript lacks. */
class MissingUtility extends Error {
  constructor(readonly coalition: readonly number[]) {
    super(`no utility for coalition [${coalition.join(',')}]`);
  }
}

/**
 * Whether the committed model is the grand coalition's model, so U(all players) must equal the
 * committed model's improvement: a plain server step (FedAvg, FedProx) with no robust rule and no norm
 * bound moves the model by exactly Σ parts / Σ weights, which is what contribution scoring rebuilds.
 */
export function grandCoalitionIsCommittedModel(spec: JobSpec): boolean {
  const s = spec.strategy;
  return (s.name === 'fedavg' || s.name === 'fedprox') && !s.robust && s.maxUpdateNorm === undefined;
}

/**
 * Checks one round's scoring transcript against its round transcript, the job spec and the buyer's
 * own evaluation, in order: it names the committed round (and the seed and metric the spec implies);
 * its players are exactly the round's contributors (or cohorts); its utilities are enough to rerun the
 * Shapley routine the coordinator runs (coordinator/contribution/shapley.ts, the same code) and give
 * the signed values; its baseline is the previous model's metric; and U(all) is the committed model's
 * improvement where the strategy makes them the same model.
 */
export async function checkScoring(input: ScoringCheckInput): Promise<ScoringCheckResult> {
  const { spec, round, scoring } = input;
  const at = round.round;
  const out: ScoringCheckResult = { divergences: [], values: null, notes: [] };
  const diverge = (d: Omit<AuditDivergence, 'round'>) => out.divergences.push({ round: at, ...d });
  const options = contributionOptionsOf(spec);
  const c = scoring.contribution;

  const seed = deriveSeed(spec.seed, 'contribution', at);
  const named = `job ${scoring.jobId} round ${scoring.round} attempt ${scoring.attempt} transcript ${scoring.roundTranscriptHash}, seed ${scoring.seed}, metric ${c.metric}`;
  const expected = `job ${round.jobId} round ${at} attempt ${round.attempt} transcript ${input.roundHash}, seed ${seed}, metric ${options.metric}`;
  if (named !== expected) {
    diverge({
      check: 'scoring-round',
      claimed: named,
      found: expected,
      message: 'The scoring transcript is not of the committed round (or not scored as the spec says).',
    });
    return out;
  }

  const players = c.values.map((v) => v.members);
  const playerProblem = checkPlayers(scoring.basis, players, round);
  if (playerProblem) {
    diverge({ check: 'scoring-players', ...playerProblem });
    return out;
  }

  const n = players.length;
  const table = new Map<string, number>();
  for (const u of scoring.utilities) {
    const key = [...u.coalition].sort((a, b) => a - b).join(',');
    if (u.coalition.some((i) => i >= n) || new Set(u.coalition).size !== u.coalition.length || table.has(key)) {
      diverge({
        check: 'scoring-utilities',
        claimed: `coalition [${u.coalition.join(',')}]`,
        found: `players 0..${n - 1}, each coalition once`,
        message: 'The utility table names a coalition that cannot exist, or one twice.',
      });
      return out;
    }
    table.set(key, u.utility);
  }
  if (table.get('') !== 0) {
    diverge({
      check: 'scoring-utilities',
      claimed: `U(∅) = ${table.get('') ?? 'absent'}`,
      found: 'U(∅) = 0',
      message: 'The empty coalition must be worth 0 (U is the improvement over the previous model).',
    });
    return out;
  }
  const utility: Utility = async (coalition) => {
    const value = table.get(coalition.join(','));
    if (value === undefined) throw new MissingUtility(coalition);
    return value;
  };
  const exact = n <= options.exactUpTo;
  let result: Awaited<ReturnType<typeof exactShapley>>;
  try {
    result = exact
      ? await exactShapley(n, utility)
      : await gtgShapley(n, utility, { maxEvaluations: options.maxEvaluations, seed });
  } catch (err) {
    if (!(err instanceof MissingUtility)) throw err;
    diverge({
      check: 'scoring-utilities',
      claimed: `${table.size} coalition utilities`,
      found: `the ${exact ? 'exact' : 'GTG'} Shapley routine needs coalition [${err.coalition.join(',')}]`,
      message: "The signed utilities are not the ones the coordinator's Shapley routine evaluates.",
    });
    return out;
  }
  out.values = result.values;
  const method = exact ? 'exact' : 'gtg';
  if (c.method !== method) {
    diverge({
      check: 'scoring-values',
      claimed: `method ${c.method}`,
      found: `method ${method} (${n} players, exactUpTo ${options.exactUpTo})`,
      message: 'The round was scored with another Shapley method than the spec implies.',
    });
    return out;
  }
  for (let i = 0; i < n; i++) {
    if (Math.abs(c.values[i].value - result.values[i]) > 1e-9 * Math.max(1, Math.abs(result.values[i]))) {
      diverge({
        check: 'scoring-values',
        claimed: `${describePlayer(players[i])}: ${c.values[i].value}`,
        found: `${result.values[i]} (recomputed from the signed utilities)`,
        message: `The signed Shapley value of ${describePlayer(players[i])} is not what its utilities give.`,
      });
      return out;
    }
  }
  if (c.improvement !== result.fullUtility) {
    diverge({
      check: 'scoring-values',
      claimed: `improvement ${c.improvement}`,
      found: `U(all players) = ${result.fullUtility}`,
      message: "The signed improvement is not the grand coalition's signed utility.",
    });
    return out;
  }

  const metricOf = (s: ModelScore) => (c.metric === 'accuracy' ? s.accuracy : -s.loss);
  if (input.before) {
    const baseline = metricOf(input.before);
    if (differs(c.baseline, baseline, input.tolerance)) {
      diverge({
        check: 'scoring-baseline',
        claimed: `baseline ${c.baseline}`,
        found: `${baseline} (the previous model on your validation set)`,
        message: "The scoring's baseline is not the previous model's metric on your validation set.",
      });
      return out;
    }
  }
  if (input.before && input.after) {
    const improvement = metricOf(input.after) - metricOf(input.before);
    if (scoring.basis === 'round' || grandCoalitionIsCommittedModel(spec)) {
      if (differs(c.improvement, improvement, 2 * input.tolerance)) {
        diverge({
          check: 'scoring-improvement',
          claimed: `U(all players) = ${c.improvement}`,
          found: `${improvement} (the committed model's improvement on your validation set)`,
          message: "The value of all players together is not the committed model's improvement.",
        });
      }
    } else {
      out.notes.push(
        `round ${at}: U(all players) cannot be compared with the committed model (strategy ${spec.strategy.name}${spec.strategy.robust ? ` with ${spec.strategy.robust.rule}` : ''}${spec.strategy.maxUpdateNorm !== undefined ? ' with maxUpdateNorm' : ''} is not a plain FedAvg step)`,
      );
    }
  }
  return out;
}

function describePlayer(members: readonly string[]): string {
  const short = (id: string) => (id.length > 12 ? `${id.slice(0, 12)}…` : id);
  return members.length === 1 ? `client ${short(members[0])}` : `cohort {${members.map(short).join(', ')}}`;
}

/** Why the players are not the round's contributors, or null when they are. */
function checkPlayers(
  basis: ScoringTranscript['basis'],
  players: readonly (readonly string[])[],
  round: RoundTranscript,
): Pick<AuditDivergence, 'claimed' | 'found' | 'message'> | null {
  const sorted = (xs: readonly string[]) => [...xs].sort().join(',');
  const contributors = sorted(round.participants);
  const all = players.flat();
  if (new Set(all).size !== all.length || sorted(all) !== contributors) {
    return {
      claimed: `players ${players.map((p) => `{${sorted(p)}}`).join(' ')}`,
      found: `contributors {${contributors}}`,
      message: "The scored players are not exactly the round's contributors, each once.",
    };
  }
  if (basis === 'round' && players.length !== 1) {
    return {
      claimed: `${players.length} players valued on the committed model`,
      found: '1 group of all contributors',
      message: 'A round scored on its committed model has one player: all its contributors.',
    };
  }
  if (basis === 'parts' && round.cohorts) {
    const cohorts = new Set(round.cohorts.map(sorted));
    const stray = players.find((p) => !cohorts.has(sorted(p)));
    if (stray || cohorts.size !== players.length) {
      return {
        claimed: `players ${players.map((p) => `{${sorted(p)}}`).join(' ')}`,
        found: `cohorts ${round.cohorts.map((c) => `{${sorted(c)}}`).join(' ')}`,
        message: "The scored players are not the round's committed cohorts.",
      };
    }
  }
  return null;
}
