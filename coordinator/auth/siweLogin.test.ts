import { randomBytes } from 'node:crypto';
import { Wallet } from 'ethers';
import { SiweMessage } from 'siwe';
import { codeOfAsync } from '../../test/support/codeOf';
import { SiweLogin } from './siweLogin';

describe('Sign-In with Ethereum', () => {
  const audience = 'http://127.0.0.1:8080';
  let now = Date.UTC(2031, 0, 1);
  const login = new SiweLogin({
    audience: () => audience,
    jwtSecret: randomBytes(32),
    tokenTtlSeconds: 900,
    windowMs: 120_000,
    maxOutstandingNonces: 5,
    now: () => now,
  });
  const wallet = Wallet.createRandom();

  async function signed(overrides: Partial<ConstructorParameters<typeof SiweMessage>[0] & object> = {}) {
    const { nonce, domain, uri } = login.issueNonce();
    const message = new SiweMessage({
      domain,
      uri,
      address: wallet.address,
      version: '1',
      chainId: 1,
      nonce,
      issuedAt: new Date(now).toISOString(),
      ...overrides,
    }).prepareMessage();
    return { message, signature: await wallet.signMessage(message) };
  }

  it('answers a token for eth:<address> that expires with its TTL', async () => {
    const session = await login.login(await signed());
    expect(session.principal.id).toBe(`eth:${wallet.address.toLowerCase()}`);
    expect((await login.verifyToken(session.token)).address).toBe(wallet.address.toLowerCase());
    now += 899_000;
    await expect(login.verifyToken(session.token)).resolves.toMatchObject({ via: 'jwt' });
    now += 2_000;
    expect(await codeOfAsync(() => login.verifyToken(session.token))).toBe('AUTH_TOKEN_INVALID');
  });

  it('refuses replays, foreign domains and URIs, stale messages, other signers and unknown nonces', async () => {
    const once = await signed();
    await login.login(once);
    expect(await codeOfAsync(() => login.login(once))).toBe('AUTH_SIWE_INVALID');
    expect(await codeOfAsync(async () => login.login(await signed({ domain: 'evil.example' })))).toBe(
      'AUTH_SIWE_INVALID',
    );
    expect(await codeOfAsync(async () => login.login(await signed({ uri: 'http://evil.example/' })))).toBe(
      'AUTH_SIWE_INVALID',
    );
    expect(
      await codeOfAsync(async () => login.login(await signed({ issuedAt: new Date(now - 600_000).toISOString() }))),
    ).toBe('AUTH_SIWE_INVALID');
    const forged = await signed();
    forged.signature = await Wallet.createRandom().signMessage(forged.message);
    expect(await codeOfAsync(() => login.login(forged))).toBe('AUTH_SIWE_INVALID');
    const made = new SiweMessage({
      domain: '127.0.0.1:8080',
      uri: audience,
      address: wallet.address,
      version: '1',
      chainId: 1,
      nonce: 'a1b2c3d4e5f6a7b8',
      issuedAt: new Date(now).toISOString(),
    }).prepareMessage();
    expect(
      await codeOfAsync(async () => login.login({ message: made, signature: await wallet.signMessage(made) })),
    ).toBe('AUTH_SIWE_INVALID');
    expect(await codeOfAsync(() => login.login({ message: 'hello', signature: `0x${'1'.repeat(130)}` }))).toBe(
      'AUTH_SIWE_INVALID',
    );
  });

  it('bounds the outstanding nonces and expires unused ones', async () => {
    const fresh = new SiweLogin({
      audience: () => audience,
      jwtSecret: randomBytes(32),
      tokenTtlSeconds: 60,
      windowMs: 60_000,
      maxOutstandingNonces: 3,
      nonceTtlMs: 1000,
      now: () => now,
    });
    for (let i = 0; i < 3; i++) fresh.issueNonce();
    expect(await codeOfAsync(async () => fresh.issueNonce())).toBe('RATE_LIMITED');
    now += 1001;
    expect(fresh.issueNonce().nonce).toMatch(/^[0-9a-f]{32}$/);
  });

  it('refuses a token signed with another secret or for another audience', async () => {
    const session = await login.login(await signed());
    const otherSecret = new SiweLogin({
      audience: () => audience,
      jwtSecret: randomBytes(32),
      tokenTtlSeconds: 60,
      windowMs: 60_000,
      now: () => now,
    });
    expect(await codeOfAsync(() => otherSecret.verifyToken(session.token))).toBe('AUTH_TOKEN_INVALID');
  });
});
