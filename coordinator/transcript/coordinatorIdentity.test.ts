import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadOrCreateTranscriptKey } from './coordinatorIdentity';

const dir = () => mkdtempSync(join(tmpdir(), 'trib-transcript-key-'));

describe('the coordinator transcript key file', () => {
  it('is created with mode 0600 when absent, and the same key is loaded from it afterwards', () => {
    const path = join(dir(), 'nested', 'transcripts.key');
    const created = loadOrCreateTranscriptKey(path);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(path, 'utf8'))).toMatchObject({
      version: 1,
      kind: 'ed25519',
      use: 'tributary/coordinator-transcripts',
      publicKey: created.clientId,
    });
    const loaded = loadOrCreateTranscriptKey(path);
    expect(loaded.clientId).toBe(created.clientId);
    expect(Buffer.from(loaded.secretKey).equals(Buffer.from(created.secretKey))).toBe(true);
  });

  it('refuses a file that is not a transcript key (a client key file, a mismatched pair, garbage) without echoing it', () => {
    const d = dir();
    const secret = 'ab'.repeat(64);
    const clientKeyFile = join(d, 'client.key');
    writeFileSync(
      clientKeyFile,
      JSON.stringify({ version: 1, kind: 'ed25519', publicKey: 'cd'.repeat(32), secretKey: secret }),
    );
    const created = join(d, 'ok.key');
    loadOrCreateTranscriptKey(created);
    const mismatched = join(d, 'mismatched.key');
    writeFileSync(
      mismatched,
      JSON.stringify({ ...JSON.parse(readFileSync(created, 'utf8')), publicKey: 'ef'.repeat(32) }),
    );
    const garbage = join(d, 'garbage.key');
    writeFileSync(garbage, `not json ${secret}`);
    for (const path of [clientKeyFile, mismatched, garbage]) {
      let caught: unknown;
      try {
        loadOrCreateTranscriptKey(path);
      } catch (err) {
        caught = err;
      }
      expect(caught).toMatchObject({ code: 'CONFIG_INVALID' });
      expect((caught as Error).message).not.toContain(secret);
    }
  });
});
