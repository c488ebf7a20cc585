import { createHash } from 'node:crypto';
import { codeOfAsync } from '../../test/support/codeOf';
import { MemoryStore } from '../store/memoryStore';
import { ApiKeyService } from './apiKeys';
import type { Principal } from './principal';

describe('API keys', () => {
  let now = Date.UTC(2031, 0, 1);
  const store = new MemoryStore();
  const keys = new ApiKeyService(store, { maxKeysPerOwner: 2, now: () => now });
  const alice: Principal = {
    id: `ed25519:${'a'.repeat(64)}`,
    via: 'http-signature',
    scopes: 'all',
    clientId: 'a'.repeat(64),
  };
  const bob: Principal = { id: `eth:0x${'b'.repeat(40)}`, via: 'jwt', scopes: 'all', address: `0x${'b'.repeat(40)}` };

  it('stores only the hash, acts as its owner with its scopes, and stops at expiry or revocation', async () => {
    const { record, token } = await keys.create(alice, { name: 'ci', scopes: ['jobs:read'], expiresInSeconds: 60 });
    expect(record.tokenHash).toBe(createHash('sha256').update(token).digest('hex'));
    expect(JSON.stringify(await store.getApiKey(record.id))).not.toContain(token.slice(21));
    expect(await keys.verify(token)).toEqual({
      id: alice.id,
      via: 'api-key',
      scopes: ['jobs:read'],
      apiKeyId: record.id,
      clientId: alice.clientId,
    });
    now += 60_000;
    expect(await codeOfAsync(() => keys.verify(token))).toBe('API_KEY_INVALID');
    const second = await keys.create(bob, { name: 'b', scopes: ['jobs:write'], expiresInSeconds: 3600 });
    expect((await keys.verify(second.token)).address).toBe(bob.address);
    expect(await codeOfAsync(() => keys.revoke(alice, second.record.id))).toBe('NOT_FOUND');
    await keys.revoke(bob, second.record.id);
    expect(await codeOfAsync(() => keys.verify(second.token))).toBe('API_KEY_INVALID');
    expect(await codeOfAsync(() => keys.revoke(bob, second.record.id))).toBe('NOT_FOUND');
  });

  it('refuses malformed tokens and wrong secrets alike, and caps live keys per owner', async () => {
    const { token } = await keys.create(alice, { name: 'one', scopes: ['jobs:read'], expiresInSeconds: 3600 });
    for (const bad of [
      'trk_x',
      `${token.slice(0, -1)}${token.endsWith('A') ? 'B' : 'A'}`,
      'trk_0000000000000000_'.padEnd(64, 'A'),
    ]) {
      expect(await codeOfAsync(() => keys.verify(bad))).toBe('API_KEY_INVALID');
    }
    await keys.create(alice, { name: 'two', scopes: ['jobs:read'], expiresInSeconds: 3600 });
    expect(
      await codeOfAsync(() => keys.create(alice, { name: 'three', scopes: ['jobs:read'], expiresInSeconds: 3600 })),
    ).toBe('QUOTA_EXCEEDED');
  });
});
