import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KeyHolderLedger } from './keyHolderLedger';

describe('KeyHolderLedger', () => {
  const holder = 'ab'.repeat(32);
  const entry = {
    round: 2,
    attempt: 1,
    digest: 'd'.repeat(64),
    contributors: ['a'.repeat(64), 'b'.repeat(64)],
    selected: ['a'.repeat(64), 'b'.repeat(64), 'c'.repeat(64)],
    decryptedAt: new Date(0).toISOString(),
  };

  it('persists each entry before returning (mode 0600) and reloads it after a restart', () => {
    const path = join(mkdtempSync(join(tmpdir(), 'kh-ledger-')), 'sub', 'ledger.json');
    const ledger = KeyHolderLedger.open(path, 'job1', holder);
    expect(ledger.entries()).toEqual([]);
    ledger.record(entry);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const reopened = KeyHolderLedger.open(path, 'job1', holder);
    expect(reopened.find(2, 1)).toEqual(entry);
    expect(reopened.find(2, 0)).toBeUndefined();
    expect(() => reopened.record(entry)).toThrow(expect.objectContaining({ code: 'INTERNAL' }));
    expect(JSON.parse(readFileSync(path, 'utf8')).entries).toHaveLength(1);
  });

  it("refuses a corrupt file and another job's or key holder's ledger", () => {
    const dir = mkdtempSync(join(tmpdir(), 'kh-ledger-'));
    const path = join(dir, 'ledger.json');
    KeyHolderLedger.open(path, 'job1', holder).record(entry);
    expect(() => KeyHolderLedger.open(path, 'job2', holder)).toThrow(
      expect.objectContaining({ code: 'CONFIG_INVALID' }),
    );
    expect(() => KeyHolderLedger.open(path, 'job1', 'cd'.repeat(32))).toThrow(
      expect.objectContaining({ code: 'CONFIG_INVALID' }),
    );
    writeFileSync(path, '{"version":1,"entries":[');
    expect(() => KeyHolderLedger.open(path, 'job1', holder)).toThrow(
      expect.objectContaining({ code: 'CONFIG_INVALID' }),
    );
  });

  it('without a path keeps entries in memory only', () => {
    const ledger = KeyHolderLedger.open(undefined, 'job1', holder);
    ledger.record(entry);
    expect(ledger.find(2, 1)).toEqual(entry);
    expect(KeyHolderLedger.open(undefined, 'job1', holder).entries()).toEqual([]);
  });
});
