import { mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPackedPaillierParams, decryptSum, encryptVector } from '../shared/paillier';
import { generateKeyHolderKeys, keyHolderSpecFields, loadKeyHolderKeyFile, writeKeyHolderKeyFile } from './keyHolder';

jest.setTimeout(30_000);

describe('key-holder key file', () => {
  it('round-trips (mode 0600, no overwrite) and the loaded key decrypts what the public key encrypted', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kh-'));
    const path = join(dir, 'kh.key');
    const keys = await generateKeyHolderKeys(1024);
    writeKeyHolderKeyFile(path, keys);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(() => writeKeyHolderKeyFile(path, keys)).toThrow();
    const loaded = loadKeyHolderKeyFile(path);
    expect(keyHolderSpecFields(loaded)).toEqual(keyHolderSpecFields(keys));
    expect(loaded.identity.clientId).toMatch(/^[0-9a-f]{64}$/);
    const params = createPackedPaillierParams({ keyBits: 1024, clipRange: 1, maxClients: 2 });
    const { ciphertexts } = await encryptVector(keys.privateKey.publicKey, [0.5, -0.25], params);
    const sums = await decryptSum(loaded.privateKey, ciphertexts, params, 1, 2);
    expect([...sums].map((v) => Number(v.toFixed(3)))).toEqual([0.5, -0.25]);
    const bad = join(dir, 'bad.key');
    writeFileSync(bad, '{"version":1}');
    expect(() => loadKeyHolderKeyFile(bad)).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID' }));
  });
});
