import { TributaryError } from '../shared/errors';
import type { JoinResult } from '../shared/schemas/messages';
import type { CoordinatorConnection } from './coordinatorConnection';
import { isJobFinished, joinOrFinish } from './joinJob';

const conn = (connected: boolean) => ({ socket: { connected } }) as unknown as CoordinatorConnection;
const joined = {
  jobId: 'j',
  spec: {},
  status: 'running',
  currentRound: 0,
  weightManifest: [],
} as unknown as JoinResult;

describe('joinOrFinish', () => {
  it('returns the join result, or the finished job when it is over', async () => {
    expect(
      await joinOrFinish(
        conn(true),
        'j',
        async () => joined,
        () => true,
        () => undefined,
      ),
    ).toBe(joined);
    const over = await joinOrFinish(
      conn(true),
      'j',
      async () => {
        throw new TributaryError('JOB_NOT_RUNNING', 'Job j is completed', { details: { status: 'completed' } });
      },
      () => true,
      () => undefined,
    );
    expect(isJobFinished(over)).toBe(true);
    expect(over).toMatchObject({ jobId: 'j', status: 'completed' });
    expect(isJobFinished(joined)).toBe(false);
  });

  it('retries transient failures while connected, gives up quietly when the connection is gone, and throws the rest', async () => {
    let calls = 0;
    const warnings: string[] = [];
    const flaky = async () => {
      if (++calls < 2) throw new TributaryError('INTERNAL', 'no answer');
      return joined;
    };
    expect(
      await joinOrFinish(
        conn(true),
        'j',
        flaky,
        () => true,
        (m) => warnings.push(m),
      ),
    ).toBe(joined);
    expect(warnings).toHaveLength(1);
    calls = 0;
    expect(
      await joinOrFinish(
        conn(false),
        'j',
        flaky,
        () => true,
        () => undefined,
      ),
    ).toBeNull();
    await expect(
      joinOrFinish(
        conn(true),
        'j',
        async () => {
          throw new TributaryError('JOB_NOT_FOUND');
        },
        () => true,
        () => undefined,
      ),
    ).rejects.toMatchObject({ code: 'JOB_NOT_FOUND' });
  });

  it('follows JOB_ELSEWHERE to a node of its own list, else to its next URL, else dials its one URL again', async () => {
    const elsewhere = async (): Promise<JoinResult> => {
      throw new TributaryError('JOB_ELSEWHERE', 'elsewhere', { details: { ownerUrl: 'http://owner.test' } });
    };
    const moves: string[] = [];
    const fake = (known: string[], listSize: number) =>
      ({
        socket: { connected: true },
        failOver: (url?: string) => {
          if (url !== undefined ? !known.includes(url) : listSize < 2) return false;
          moves.push(`failOver:${url ?? 'next'}`);
          return true;
        },
        redial: () => {
          moves.push('redial');
          return true;
        },
      }) as unknown as CoordinatorConnection;
    const run = (c: CoordinatorConnection) =>
      joinOrFinish(
        c,
        'j',
        elsewhere,
        () => true,
        () => undefined,
      );
    expect(await run(fake(['http://owner.test'], 2))).toBeNull();
    expect(await run(fake([], 3))).toBeNull();
    // One URL that is not the owner's: a load balancer, so a fresh connection lands on another node.
    expect(await run(fake([], 1))).toBeNull();
    expect(moves).toEqual(['failOver:http://owner.test', 'failOver:next', 'redial']);
  });
});
