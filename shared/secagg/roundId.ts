import { TributaryError } from '../errors';

/** What one SecAgg+ session is for: a job's round attempt, and the cohort when the round is split. */
export interface SecAggSessionRef {
  jobId: string;
  round: number;
  attempt: number;
  /** The cohort index; absent when the round is one cohort. */
  cohort?: number;
}

const JOB_ID = /^[A-Za-z0-9_-]{1,64}$/;
const COUNTER = '(0|[1-9][0-9]{0,8})';
const ROUND_ID = new RegExp(`^([A-Za-z0-9_-]{1,64}):${COUNTER}:${COUNTER}(?::c${COUNTER})?$`);

/**
 * The SecAgg+ round id `<jobId>:<round>:<attempt>[:c<cohort>]`. Clients sign it with their keys and
 * survivor sets, so it must name the session uniquely: the same id twice would let old signatures count.
 */
export function secaggRoundId(ref: SecAggSessionRef): string {
  const id = `${ref.jobId}:${ref.round}:${ref.attempt}${ref.cohort === undefined ? '' : `:c${ref.cohort}`}`;
  if (!JOB_ID.test(ref.jobId) || !ROUND_ID.test(id)) {
    throw new TributaryError(
      'CONFIG_INVALID',
      `a SecAgg+ session needs a job id of 1-64 characters [A-Za-z0-9_-] and non-negative integer round, attempt and cohort; got ${JSON.stringify(ref)}`,
    );
  }
  return id;
}

/** Parses a round id made by secaggRoundId; null for anything else. */
export function parseSecAggRoundId(roundId: string): SecAggSessionRef | null {
  const m = ROUND_ID.exec(roundId);
  if (!m) return null;
  const ref: SecAggSessionRef = { jobId: m[1], round: Number(m[2]), attempt: Number(m[3]) };
  if (m[4] !== undefined) ref.cohort = Number(m[4]);
  return ref;
}
