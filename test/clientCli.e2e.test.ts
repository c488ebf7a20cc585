/** The client CLI validates its dataset against the job before connecting, and fails clearly on a backend it cannot load. */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startCoordinator, type Coordinator } from '../coordinator/server';
import { spawnTs } from './support/processes';
import { createJob } from './support/rest';

jest.setTimeout(300_000);

describe('client CLI', () => {
  let c: Coordinator;
  let jobId: string;
  const dir = mkdtempSync(join(tmpdir(), 'trib-cli-'));

  beforeAll(async () => {
    c = await startCoordinator({ port: 0, logLevel: 'silent', backend: 'cpu' });
    jobId = await createJob(c.url, {
      name: 'cli',
      model: { kind: 'builtin', name: 'mlp' },
      input: { shape: [2], numClasses: 2 },
      rounds: 1,
      quorumTimeoutMs: 120_000,
    });
  });
  afterAll(async () => c?.close());

  async function run(csv: string | null, extra: string[] = [], job = jobId) {
    const file = join(dir, `d${Math.random().toString(36).slice(2)}.csv`);
    if (csv !== null) writeFileSync(file, csv);
    const p = spawnTs('client/cli.ts', [
      '--coordinator',
      c.url,
      '--job',
      job,
      '--data',
      file,
      '--key',
      join(dir, 'k.key'),
      ...extra,
    ]);
    const code = await p.exit;
    return { code, stderr: p.stderr.join('\n') };
  }

  it.each([
    ['a wrong column count', 'f0,f1,f2,label\n1,2,3,0\n', 'DATA_COLUMNS_MISMATCH'],
    ['a non-numeric value', 'f0,f1,label\n1,abc,0\n', 'DATA_NOT_NUMERIC'],
    ['a label out of range', 'f0,f1,label\n1,2,0\n1,2,7\n', 'DATA_LABEL_OUT_OF_RANGE'],
    ['an empty file', 'f0,f1,label\n', 'DATA_FILE_EMPTY'],
  ])('refuses %s before connecting', async (_what, csv, code) => {
    const r = await run(csv);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`error ${code}:`);
    expect(c.directory.connectedCount).toBe(0);
  });

  it('names a missing file, an unknown job and an unavailable backend', async () => {
    let r = await run(null);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/error CONFIG_INVALID: .*d.*\.csv/);
    r = await run('f0,f1,label\n1,2,0\n', [], 'job_missing');
    expect(r.stderr).toContain('error JOB_NOT_FOUND');
    r = await run('f0,f1,label\n1,2,0\n', ['--backend', 'tensorflow']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('error BACKEND_UNAVAILABLE');
    expect(r.stderr).toMatch(/tfjs-node/);
  });
});
