import { secaggRoundId } from './roundId';
import { UnmaskedRounds } from './unmaskedRounds';

const ref = (round: number, attempt: number, cohort?: number) => ({
  jobId: 'job1',
  round,
  attempt,
  ...(cohort === undefined ? {} : { cohort }),
});
const id = (round: number, attempt: number, cohort?: number) => secaggRoundId(ref(round, attempt, cohort));

/** Opens, masks and (optionally) reaches unmasking in one session. */
function play(
  g: UnmaskedRounds,
  round: number,
  attempt: number,
  upTo: 'open' | 'masked' | 'unmasking',
  cohort?: number,
) {
  const r = ref(round, attempt, cohort);
  g.open(r, id(round, attempt, cohort));
  if (upTo !== 'open') g.beforeMasking(r, id(round, attempt, cohort));
  if (upTo === 'unmasking') g.beforeUnmasking(r, id(round, attempt, cohort));
}

describe('UnmaskedRounds: one masked input per (job, round)', () => {
  it('a retry after an attempt that failed before unmasking may mask again', () => {
    const g = new UnmaskedRounds('job1');
    play(g, 3, 0, 'masked');
    play(g, 3, 1, 'unmasking', 2);
    expect(g.sessionsOf(3).map((s) => s.progress)).toEqual(['masked', 'unmasking']);
  });

  it('refuses to mask again once an earlier attempt of the round reached unmasking, but not in other rounds', () => {
    const g = new UnmaskedRounds('job1');
    play(g, 3, 0, 'unmasking');
    g.open(ref(3, 1), id(3, 1));
    expect(() => g.beforeMasking(ref(3, 1), id(3, 1))).toThrow(
      expect.objectContaining({ code: 'SECAGG_INPUT_ALREADY_UNMASKED' }),
    );
    expect(g.sessionsOf(3)[1].progress).toBe('open'); // the refusal recorded nothing
    expect(() => play(g, 4, 0, 'unmasking')).not.toThrow();
  });

  it("'masked' mode refuses as soon as an earlier attempt's masked input was sent", () => {
    const g = new UnmaskedRounds('job1', { refuseAfter: 'masked' });
    play(g, 3, 0, 'masked');
    g.open(ref(3, 1), id(3, 1));
    expect(() => g.beforeMasking(ref(3, 1), id(3, 1))).toThrow(/was sent \(and may have been unmasked\)/);
    // An attempt that failed before the client masked does not count.
    const h = new UnmaskedRounds('job1', { refuseAfter: 'masked' });
    play(h, 3, 0, 'open');
    expect(() => play(h, 3, 1, 'unmasking')).not.toThrow();
    expect(() => new UnmaskedRounds('job1', { refuseAfter: 'never' as 'masked' })).toThrow(/refuseAfter/);
  });

  it('refuses a repeated round id, a second cohort in one attempt, an older attempt, and another job', () => {
    const g = new UnmaskedRounds('job1');
    play(g, 3, 1, 'open', 0);
    const code = { code: 'SECAGG_MESSAGE_INVALID' };
    expect(() => g.open(ref(3, 1, 0), id(3, 1, 0))).toThrow(expect.objectContaining(code));
    expect(() => g.open(ref(3, 1, 1), id(3, 1, 1))).toThrow(/already in another session of attempt 1/);
    expect(() => g.open(ref(3, 0), id(3, 0))).toThrow(/attempt 1 of round 3 already started/);
    expect(() => g.open({ ...ref(3, 2), jobId: 'job2' }, 'job2:3:2')).toThrow(/expected job job1/);
    expect(g.sessionsOf(3)).toHaveLength(1);
  });

  it('an attempt is over once a later one is set up: its consistency check and masking are refused', () => {
    const g = new UnmaskedRounds('job1');
    play(g, 3, 0, 'masked');
    play(g, 3, 1, 'open');
    expect(() => g.beforeUnmasking(ref(3, 0), id(3, 0))).toThrow(/session job1:3:0 is over: attempt 1/);
    expect(() => g.assertCurrent(ref(3, 0), id(3, 0))).toThrow(/is over/);
    expect(() => g.beforeMasking(ref(3, 9), id(3, 9))).toThrow(/was never set up/);
    // Unmasking needs a masked input in that session.
    expect(() => g.beforeUnmasking(ref(3, 1), id(3, 1))).toThrow(/no masked input/);
  });
});
