/** `npm start` end to end on the small tabular example: the JSON contract, the files written, and the flags' errors. */
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnTs } from './support/processes';

jest.setTimeout(180_000);

describe('demo', () => {
  it.each([
    ['none', 3],
    ['secagg', 2], // secagg clients report no training loss: one line fewer in the chart
  ])('runs a federation (secure aggregation %s) and prints one JSON object as its last stdout line', async (mode, lines) => {
    const out = mkdtempSync(join(tmpdir(), 'trib-demo-'));
    const p = spawnTs('examples/demo.ts', ['--example', 'tabular', '--clients', '3', '--rounds', '3', '--partition', 'dirichlet:1', '--seed', '3', '--secure-aggregation', String(mode), '--out', out, '--json']);
    expect(await p.exit).toBe(0);
    const result = JSON.parse(p.lines[p.lines.length - 1]);
    expect(result).toMatchObject({ example: 'tabular', clients: 3, rounds: 3, partition: 'dirichlet:1', seed: 3, secureAggregation: mode, status: 'completed' });
    expect(result.accuracyByRound).toHaveLength(3);
    expect(result.roundSeconds).toHaveLength(3);
    expect(result.finalAccuracy).toBeGreaterThan(0.5);
    expect(typeof result.backend).toBe('string');
    const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8'));
    expect(summary.accuracyByRound).toEqual(result.accuracyByRound);
    const csv = readFileSync(join(out, 'rounds.csv'), 'utf8').trim().split('\n');
    expect(csv[0]).toMatch(/^round,participants/);
    expect(csv).toHaveLength(4);
    const html = readFileSync(join(out, 'chart.html'), 'utf8');
    expect(html).toContain('<svg');
    expect(html.match(/<polyline/g)).toHaveLength(Number(lines));
    expect(existsSync(join(out, 'data', 'client-0.csv'))).toBe(true);
  });

  it('rejects bad flags with a message that says what was expected', async () => {
    const p = spawnTs('examples/demo.ts', ['--partition', 'dirichlet:-1']);
    expect(await p.exit).toBe(2);
    expect(p.stderr.join('\n')).toMatch(/--partition must be iid, dirichlet:<alpha > 0> or shards/);
  });
});
