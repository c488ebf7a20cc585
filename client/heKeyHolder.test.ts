import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { codeOf, codeOfAsync } from '../test/support/codeOf';
import { HeDecryptLedger } from './heDecryptLedger';
import { generateHeKeyHolderKeys, HeKeyHolder, loadHeKeyHolderKeyFile, writeHeKeyHolderKeyFile } from './heKeyHolder';

jest.setTimeout(60_000);

describe('he key-holder key files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'he-keyholder-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('round-trips, is private, refuses to overwrite, and refuses keys that are not its own pair', async () => {
    const keys = await generateHeKeyHolderKeys();
    const path = join(dir, 'kh.key');
    writeHeKeyHolderKeyFile(path, keys);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(() => writeHeKeyHolderKeyFile(path, keys)).toThrow();
    const loaded = loadHeKeyHolderKeyFile(path);
    expect(loaded.identity.clientId).toBe(keys.identity.clientId);
    expect(Buffer.from(loaded.publicKey).equals(Buffer.from(keys.publicKey))).toBe(true);

    // A secret key with the right layout but from another pair: caught before the key holder connects.
    const other = await generateHeKeyHolderKeys();
    const mixed = JSON.parse(readFileSync(path, 'utf8'));
    mixed.he.secretKey = Buffer.from(other.secretKey).toString('base64');
    const mixedPath = join(dir, 'mixed.key');
    writeFileSync(mixedPath, JSON.stringify(mixed));
    const holder = new HeKeyHolder({ url: 'http://127.0.0.1:9', jobId: 'j', keys: loadHeKeyHolderKeyFile(mixedPath) });
    expect(await codeOfAsync(() => holder.run())).toBe('CONFIG_INVALID');

    // A key of the wrong layout (another parameter set's public key under this name).
    const broken = JSON.parse(readFileSync(path, 'utf8'));
    broken.he.parameterSet = 'bfv-4096';
    const brokenPath = join(dir, 'broken.key');
    writeFileSync(brokenPath, JSON.stringify(broken));
    expect(codeOf(() => loadHeKeyHolderKeyFile(brokenPath))).toBe('CONFIG_INVALID');
  });
});

describe('HeDecryptLedger', () => {
  const a = 'a'.repeat(64);
  const b = 'b'.repeat(64);
  const c = 'c'.repeat(64);
  const f1 = '1'.repeat(64);
  const f2 = '2'.repeat(64);

  it('allows each attempt once, the same request again, equal or disjoint other attempts, and never going back', () => {
    const ledger = new HeDecryptLedger('j');
    expect(ledger.check(1, 0, f1, [a, b])).toBe('new');
    ledger.record(1, 0, f1, [a, b]);
    expect(ledger.check(1, 0, f1, [a, b])).toBe('repeat');
    expect(ledger.check(1, 0, f2, [a, b])).toMatchObject({ reason: 'already-decrypted' });
    expect(ledger.check(1, 1, f2, [a, c])).toMatchObject({ reason: 'overlaps-decrypted' });
    expect(ledger.check(1, 1, f2, [b, a])).toBe('new');
    expect(ledger.check(1, 2, f2, [c])).toBe('new');
    ledger.record(2, 0, f2, [a, b]);
    expect(ledger.check(1, 3, f1, [c])).toMatchObject({ reason: 'round-not-next', message: /before round 2/ });
  });

  it('persists to its file and refuses another job’s file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'he-ledger-'));
    try {
      const path = join(dir, 'ledger.json');
      new HeDecryptLedger('j', path).record(3, 1, f1, [a, b]);
      expect(new HeDecryptLedger('j', path).check(3, 1, f2, [a, b])).toMatchObject({ reason: 'already-decrypted' });
      expect(codeOf(() => new HeDecryptLedger('other', path))).toBe('CONFIG_INVALID');
      writeFileSync(path, '{"version":2}');
      expect(codeOf(() => new HeDecryptLedger('j', path))).toBe('CONFIG_INVALID');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
