import { parseCoordinatorConfig } from './config';

describe('coordinator config', () => {
  it('uses defaults, then environment, then flags, and freezes the result', () => {
    const defaults = parseCoordinatorConfig({}, {});
    expect(defaults).toMatchObject({ host: '127.0.0.1', port: 8080, backend: 'auto', dbName: 'tributary' });
    expect(defaults.mongodbUri).toBeUndefined();
    expect(Object.isFrozen(defaults)).toBe(true);
    const env = { TRIBUTARY_PORT: '9000', MONGODB_URI: 'mongodb://127.0.0.1:27017', TRIBUTARY_BACKEND: 'cpu' };
    expect(parseCoordinatorConfig({}, env)).toMatchObject({
      port: 9000,
      mongodbUri: 'mongodb://127.0.0.1:27017',
      backend: 'cpu',
    });
    expect(parseCoordinatorConfig({ port: 0, backend: undefined }, env)).toMatchObject({ port: 0, backend: 'cpu' });
  });

  it('rejects bad values with CONFIG_INVALID naming the option', () => {
    expect(() => parseCoordinatorConfig({}, { TRIBUTARY_PORT: 'eighty' })).toThrow(
      expect.objectContaining({ code: 'CONFIG_INVALID', message: expect.stringMatching(/port/) }),
    );
    expect(() => parseCoordinatorConfig({ backend: 'tpu' as never }, {})).toThrow(
      expect.objectContaining({ code: 'CONFIG_INVALID', message: expect.stringMatching(/backend/) }),
    );
    expect(() => parseCoordinatorConfig({ port: 70_000 }, {})).toThrow(
      expect.objectContaining({ code: 'CONFIG_INVALID' }),
    );
  });

  it('reads the chain settings from the environment and never echoes a bad key', () => {
    const key = `0x${'ab'.repeat(32)}`;
    const config = parseCoordinatorConfig(
      {},
      { TRIBUTARY_RPC_URL: 'http://127.0.0.1:8545', TRIBUTARY_COORDINATOR_KEY: key, TRIBUTARY_CHAIN_POLL_MS: '250' },
    );
    expect(config).toMatchObject({
      rpcUrl: 'http://127.0.0.1:8545',
      coordinatorPrivateKey: key,
      chainPollMs: 250,
      chainRetryBaseMs: 1000,
      chainRetryMaxMs: 30_000,
    });
    const secret = `0x${'cd'.repeat(31)}`; // one byte short
    let message = '';
    try {
      parseCoordinatorConfig({}, { TRIBUTARY_COORDINATOR_KEY: secret });
    } catch (e) {
      message = (e as Error).message;
      expect((e as { code?: string }).code).toBe('CONFIG_INVALID');
    }
    expect(message).toMatch(/coordinatorPrivateKey/);
    expect(message).not.toContain(secret.slice(2));
  });

  it('reads the REST access settings, defaults them, and never echoes a bad JWT secret', () => {
    const defaults = parseCoordinatorConfig({}, {});
    expect(defaults).toMatchObject({
      maxRestBodyBytes: 32 * 1024 * 1024,
      maxJsonBytes: 2 * 1024 * 1024,
      maxActiveJobsPerIdentity: 20,
      rateLimitPerIp: 1200,
      rateLimitPerIdentity: 600,
      sessionTtlSeconds: 900,
      maxScoringEvaluationsPerRound: 2048,
    });
    expect(defaults.jwtSecret).toBeUndefined();
    const env = {
      TRIBUTARY_RATE_LIMIT_PER_IP: '50',
      TRIBUTARY_MAX_ACTIVE_JOBS: '3',
      TRIBUTARY_PUBLIC_URL: 'https://coordinator.example',
      TRIBUTARY_JWT_SECRET: 'ab'.repeat(32),
    };
    expect(parseCoordinatorConfig({}, env)).toMatchObject({
      rateLimitPerIp: 50,
      maxActiveJobsPerIdentity: 3,
      publicUrl: 'https://coordinator.example',
      jwtSecret: 'ab'.repeat(32),
    });
    const short = 'cd'.repeat(16);
    let message = '';
    try {
      parseCoordinatorConfig({}, { TRIBUTARY_JWT_SECRET: short });
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toMatch(/jwtSecret/);
    expect(message).not.toContain(short);
  });
});
