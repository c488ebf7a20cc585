import { TributaryError } from '../../shared/errors';

/** The stages of one round attempt, in order. */
export const ROUND_STATES = {
  idle: 'IDLE',
  waitingForQuorum: 'WAITING_FOR_QUORUM',
  selecting: 'SELECTING',
  collecting: 'COLLECTING',
  aggregating: 'AGGREGATING',
  evaluating: 'EVALUATING',
  committing: 'COMMITTING',
  completed: 'COMPLETED',
  failed: 'FAILED',
} as const;
export type RoundState = (typeof ROUND_STATES)[keyof typeof ROUND_STATES];

const S = ROUND_STATES;

/** Every legal transition. Any stage can fail; a finished attempt (completed/failed) starts the next one. */
export const ROUND_TRANSITIONS: Readonly<Record<RoundState, readonly RoundState[]>> = {
  [S.idle]: [S.waitingForQuorum],
  [S.waitingForQuorum]: [S.selecting, S.failed],
  [S.selecting]: [S.collecting, S.failed],
  [S.collecting]: [S.aggregating, S.failed],
  [S.aggregating]: [S.evaluating, S.failed],
  [S.evaluating]: [S.committing, S.failed],
  [S.committing]: [S.completed, S.failed],
  [S.completed]: [S.waitingForQuorum, S.idle],
  [S.failed]: [S.waitingForQuorum, S.idle],
};

/** Holds the current stage and refuses illegal moves, so a bug cannot skip a stage silently. */
export class RoundStateMachine {
  private current: RoundState = S.idle;
  private enteredAt = performance.now();

  /** `onLeave(state, seconds)` is told how long each state lasted (round phase metrics). */
  constructor(private readonly onLeave?: (state: RoundState, seconds: number) => void) {}

  get state(): RoundState {
    return this.current;
  }

  to(next: RoundState): void {
    if (!ROUND_TRANSITIONS[this.current].includes(next)) {
      throw new TributaryError('INTERNAL', `Illegal round transition ${this.current} -> ${next}.`);
    }
    const now = performance.now();
    if (this.current !== S.idle) this.onLeave?.(this.current, (now - this.enteredAt) / 1000);
    this.current = next;
    this.enteredAt = now;
  }
}
