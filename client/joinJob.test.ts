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
});
