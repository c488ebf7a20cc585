import { ROUND_STATES, ROUND_TRANSITIONS, type RoundState, RoundStateMachine } from './roundStates';

const all = Object.values(ROUND_STATES) as RoundState[];

/** Drives a fresh machine along legal moves to `target`. */
function machineAt(target: RoundState): RoundStateMachine {
  const path: Record<RoundState, RoundState[]> = {
    IDLE: [],
    WAITING_FOR_QUORUM: ['WAITING_FOR_QUORUM'],
    SELECTING: ['WAITING_FOR_QUORUM', 'SELECTING'],
    COLLECTING: ['WAITING_FOR_QUORUM', 'SELECTING', 'COLLECTING'],
    AGGREGATING: ['WAITING_FOR_QUORUM', 'SELECTING', 'COLLECTING', 'AGGREGATING'],
    EVALUATING: ['WAITING_FOR_QUORUM', 'SELECTING', 'COLLECTING', 'AGGREGATING', 'EVALUATING'],
    COMMITTING: ['WAITING_FOR_QUORUM', 'SELECTING', 'COLLECTING', 'AGGREGATING', 'EVALUATING', 'COMMITTING'],
    COMPLETED: [
      'WAITING_FOR_QUORUM',
      'SELECTING',
      'COLLECTING',
      'AGGREGATING',
      'EVALUATING',
      'COMMITTING',
      'COMPLETED',
    ],
    FAILED: ['WAITING_FOR_QUORUM', 'FAILED'],
  };
  const m = new RoundStateMachine();
  for (const s of path[target]) m.to(s);
  expect(m.state).toBe(target);
  return m;
}

describe('round state machine', () => {
  it.each(all.flatMap((from) => all.map((to) => [from, to] as const)))(
    '%s -> %s is legal only if listed',
    (from, to) => {
      const m = machineAt(from);
      if (ROUND_TRANSITIONS[from].includes(to)) {
        m.to(to);
        expect(m.state).toBe(to);
      } else {
        expect(() => m.to(to)).toThrow(/Illegal round transition/);
        expect(m.state).toBe(from);
      }
    },
  );
});
