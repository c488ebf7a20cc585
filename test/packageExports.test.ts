import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

/** The package's public entry points resolve by name (package self-reference through `exports`) and export what their docs promise. */
describe('package entry points', () => {
  it('tributary/client, tributary/buyer and tributary/coordinator load under tsx and export their roles', () => {
    const script = `
      const buyer = require('tributary/buyer');
      const client = require('tributary/client');
      const coordinator = require('tributary/coordinator');
      console.log(JSON.stringify({
        buyer: ['createBuyerClient', 'createJob', 'uploadValidationSet', 'fund', 'waitForJob', 'downloadModel', 'getContributions', 'getPayouts', 'searchListings', 'cancelJob', 'createApiKey', 'revokeApiKey', 'TributaryApiError'].filter((k) => typeof buyer[k] !== 'function'),
        client: ['TributaryClient', 'loadOrCreateIdentity', 'createSignedFetch', 'publishListing', 'claimPayout', 'KeyHolder'].filter((k) => typeof client[k] !== 'function'),
        coordinator: ['startCoordinator', 'MemoryStore', 'MongoStore', 'createStrategy', 'Metrics'].filter((k) => typeof coordinator[k] !== 'function'),
        deep: (() => { try { require.resolve('tributary/coordinator/server'); return 'resolved'; } catch { return 'blocked'; } })(),
      }));`;
    const root = join(__dirname, '..');
    const out = spawnSync(process.execPath, ['-r', 'tsx/cjs', '-e', script], {
      cwd: root,
      encoding: 'utf8',
      timeout: 120_000,
    });
    expect(out.stderr).not.toMatch(/Error/);
    const missing = JSON.parse(out.stdout.trim().split('\n').pop()!);
    // Nothing missing; and only the declared entry points are public.
    expect(missing).toEqual({ buyer: [], client: [], coordinator: [], deep: 'blocked' });
  });
});
