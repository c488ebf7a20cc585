import { describeWithCluster } from './clusterNodes';
import { mongoSourceForTests } from './ferretdb';
import { noRedisReason } from './redisServer';

describe('describeWithCluster (the cluster tests’ preamble)', () => {
  const savedCi = process.env.CI;
  afterEach(() => {
    if (savedCi === undefined) delete process.env.CI;
    else process.env.CI = savedCi;
    jest.restoreAllMocks();
  });

  it('fails the file in CI when a service is missing, naming the test and the reason', () => {
    process.env.CI = 'true';
    expect(() => describeWithCluster('x cluster test', () => 'x is not installed')).toThrow(
      /^x cluster test cannot run in CI: .+/,
    );
  });

  it('skips elsewhere, with a warning that names the test and the reason', () => {
    process.env.CI = 'false';
    const warn = jest.spyOn(console, 'warn').mockImplementation(() => undefined);
    expect(describeWithCluster('x cluster test', () => 'x is not installed')).toBe(describe.skip);
    expect(warn).toHaveBeenCalledWith(expect.stringMatching(/\*\*\* SKIPPED: x cluster test \(.+\) \*\*\*/));
  });

  it('runs the tests when FerretDB and Redis are here and the extra check passes', () => {
    const ready = mongoSourceForTests() !== null && noRedisReason() === null;
    process.env.CI = 'false';
    jest.spyOn(console, 'warn').mockImplementation(() => undefined);
    expect(describeWithCluster('x cluster test')).toBe(ready ? describe : describe.skip);
  });
});
