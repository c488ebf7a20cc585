import { chmodSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Wallet } from 'ethers';
import { loadOrCreateIdentity, loadOrCreatePayoutKey } from './keyFile';

describe('key file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'trib-key-'));

  it('creates a 0600 key file on first run and loads the same identity afterwards', () => {
    const path = join(dir, 'nested', 'client.key');
    const a = loadOrCreateIdentity(path);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const b = loadOrCreateIdentity(path);
    expect(b.clientId).toBe(a.clientId);
    expect(Buffer.from(b.secretKey)).toEqual(Buffer.from(a.secretKey));
    expect(JSON.parse(readFileSync(path, 'utf8')).publicKey).toBe(a.clientId);
  });

  it('rejects a corrupted or inconsistent key file with CONFIG_INVALID', () => {
    const path = join(dir, 'bad.key');
    writeFileSync(path, '{"version":1}', { mode: 0o600 });
    expect(() => loadOrCreateIdentity(path)).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID' }));
    const good = JSON.parse(readFileSync(join(dir, 'nested', 'client.key'), 'utf8'));
    writeFileSync(path, JSON.stringify({ ...good, publicKey: '0'.repeat(64) }), { mode: 0o600 });
    expect(() => loadOrCreateIdentity(path)).toThrow(/does not match/);
  });

  it('refuses a key file readable or writable by group or others, as ssh does, and accepts it once fixed', () => {
    const path = join(dir, 'open', 'client.key');
    const identity = loadOrCreateIdentity(path);
    for (const mode of [0o644, 0o640, 0o604, 0o660, 0o602]) {
      chmodSync(path, mode);
      expect(() => loadOrCreateIdentity(path)).toThrow(
        expect.objectContaining({ code: 'CONFIG_INVALID', message: expect.stringContaining('chmod 600') }),
      );
      expect(() => loadOrCreatePayoutKey(path)).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID' }));
    }
    chmodSync(path, 0o400);
    expect(loadOrCreateIdentity(path).clientId).toBe(identity.clientId);
    chmodSync(path, 0o600);
  });

  it('creates the payout key with the identity, keeps it, and adds one to a key file written without it', () => {
    const path = join(dir, 'payout', 'client.key');
    const identity = loadOrCreateIdentity(path);
    const wallet = loadOrCreatePayoutKey(path);
    expect(loadOrCreatePayoutKey(path).address).toBe(wallet.address);
    expect(JSON.parse(readFileSync(path, 'utf8')).ethPrivateKey).toBe(wallet.privateKey);

    const old = join(dir, 'old.key');
    const { ethPrivateKey: _dropped, ...v1 } = JSON.parse(readFileSync(path, 'utf8'));
    writeFileSync(old, JSON.stringify(v1), { mode: 0o600 });
    const added = loadOrCreatePayoutKey(old);
    expect(added.address).not.toBe(wallet.address);
    expect(added).toBeInstanceOf(Wallet);
    expect(statSync(old).mode & 0o777).toBe(0o600);
    expect(loadOrCreateIdentity(old).clientId).toBe(identity.clientId);
    expect(loadOrCreatePayoutKey(old).address).toBe(added.address);
  });
});
