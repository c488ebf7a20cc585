/** `npm start -- --attackers N --attack NAME` end to end on the small tabular example (issue 13). */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnTs } from './support/processes';

jest.setTimeout(180_000);

describe('demo --attackers', () => {
  it('plants a sign-flip attacker: marked in the JSON, and contribution scoring pays it nothing', async () => {
    const out = mkdtempSync(join(tmpdir(), 'trib-demo-'));
    const p = spawnTs('examples/demo.ts', [
      ...['--example', 'tabular', '--clients', '4', '--rounds', '3', '--seed', '3'],
      ...['--secure-aggregation', 'none', '--no-chain', '--attackers', '1', '--attack', 'sign-flip'],
      ...['--out', out, '--json'],
    ]);
    expect(await p.exit).toBe(0);
    const result = JSON.parse(p.lines[p.lines.length - 1]);
    expect(result).toMatchObject({ status: 'completed', attackers: 1, attack: 'sign-flip' });
    const contributors = result.contributors as Array<{
      index: number;
      score: number;
      share: number;
      attacker?: string;
    }>;
    expect(contributors.map((c) => c.attacker ?? null)).toEqual([null, null, null, 'sign-flip']);
    expect(contributors[3].share).toBe(0);
    for (const c of contributors.slice(0, 3)) expect(c.score).toBeGreaterThan(contributors[3].score);
    expect(contributors.reduce((s, c) => s + c.share, 0)).toBeCloseTo(1, 9);
  });

  it('refuses an attack the mode cannot carry, and more attackers than leave one honest client', async () => {
    const none = spawnTs('examples/demo.ts', [
      '--secure-aggregation',
      'none',
      '--attackers',
      '1',
      '--attack',
      'negative-weight',
    ]);
    expect(await none.exit).toBe(2);
    expect(none.stderr.join('\n')).toMatch(/negative-weight .* use --secure-aggregation secagg or paillier/);
    const many = spawnTs('examples/demo.ts', ['--clients', '3', '--attackers', '3']);
    expect(await many.exit).toBe(2);
    expect(many.stderr.join('\n')).toMatch(/--attackers must be an integer in \[0, 2\]/);
    const unknown = spawnTs('examples/demo.ts', ['--attackers', '1', '--attack', 'alie']);
    expect(await unknown.exit).toBe(1);
    expect(unknown.stderr.join('\n')).toMatch(/--attack.*alie.*is invalid/);
  });
});
