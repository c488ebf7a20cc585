/**
 * `tributary buyer ...` against a live coordinator: the CLI signs with a key file it creates on first
 * run, so the job it creates is owned by that key and nobody else manages it; a key file readable by
 * others is refused, as ssh does.
 */
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadOrCreateIdentity } from '../client/keyFile';
import { startCoordinator, type Coordinator } from '../coordinator/server';
import { spawnTs } from './support/processes';

jest.setTimeout(180_000);

describe('tributary buyer', () => {
  let c: Coordinator;
  const dir = mkdtempSync(join(tmpdir(), 'trib-buyer-cli-'));
  const key = join(dir, 'keys', 'buyer.key');

  beforeAll(async () => {
    c = await startCoordinator({ port: 0, logLevel: 'silent', backend: 'cpu' });
  });
  afterAll(async () => c?.close());

  async function buyer(...args: string[]): Promise<{ code: number | string; out: string; err: string }> {
    const p = spawnTs('shared/cli.ts', ['buyer', ...args, '--coordinator', c.url, '--key', key]);
    const code = await p.exit;
    return { code, out: p.lines.join('\n'), err: p.stderr.join('\n') };
  }

  it('creates a job it owns, uploads, reads, downloads, manages API keys and cancels, all signed', async () => {
    const spec = join(dir, 'spec.json');
    writeFileSync(
      spec,
      JSON.stringify({
        name: 'cli job',
        model: { kind: 'builtin', name: 'mlp', hiddenUnits: [4] },
        input: { shape: [2], numClasses: 2 },
        rounds: 1,
        secureAggregation: 'none',
        quorumTimeoutMs: 600_000,
      }),
    );
    const created = await buyer('create-job', '--spec', spec, '--json');
    expect(created.code).toBe(0);
    const job = JSON.parse(created.out) as { id: string; owner: string };
    // The key file was created on first run, and the job belongs to it.
    expect(job.owner).toBe(`ed25519:${loadOrCreateIdentity(key).clientId}`);

    const csv = join(dir, 'validation.csv');
    writeFileSync(csv, 'f0,f1,label\n0.5,1,0\n1,2,1\n');
    const uploaded = await buyer('upload-validation-set', '--job', job.id, '--data', csv, '--json');
    expect(JSON.parse(uploaded.out)).toMatchObject({ examples: 2 });
    expect(await c.store.loadValidationSet(job.id)).not.toBeNull();

    const model = join(dir, 'model.trbt');
    expect((await buyer('download-model', '--job', job.id, '--out', model)).out).toMatch(/round 0: \d+ bytes/);
    const key1 = JSON.parse(
      (await buyer('api-key', 'create', '--name', 'ci', '--scopes', 'jobs:read', '--json')).out,
    ) as {
      id: string;
      key: string;
    };
    expect(key1.key).toMatch(/^trk_/);
    expect((await buyer('api-key', 'list')).out).toContain(key1.id);
    expect((await buyer('api-key', 'revoke', '--id', key1.id)).out).toContain('revoked');

    const cancelled = await buyer('cancel', '--job', job.id, '--reason', 'cli test', '--json');
    expect(JSON.parse(cancelled.out)).toMatchObject({
      status: 'failed',
      failureReason: expect.stringContaining('cli test'),
    });
    const status = await buyer('status', '--job', job.id);
    expect(status.out).toMatch(new RegExp(`${job.id} failed`));
    // Unknown jobs: a coded error and exit code 2.
    const missing = await buyer('status', '--job', 'job_missing');
    expect(missing.code).toBe(2);
    expect(missing.err).toMatch(/JOB_NOT_FOUND/);
  });

  it('refuses a key file other users can read', async () => {
    chmodSync(key, 0o644);
    const refused = await buyer('api-key', 'list');
    expect(refused.code).toBe(2);
    expect(refused.err).toMatch(/CONFIG_INVALID.*chmod 600/);
    chmodSync(key, 0o600);
  });
});
