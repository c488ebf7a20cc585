/** `npm start` end to end on the small tabular example: the JSON contract, the files written, and the flags' errors. */
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnTs } from './support/processes';

jest.setTimeout(360_000);

describe('demo', () => {
  it.each([
    ['none', 3, '1000000000000000000'],
    // secagg clients report no training loss: one line fewer in the chart. Three equal participation
    // scores split this budget exactly: nothing is left for the buyer to refund.
    ['secagg', 2, '3000000000000000000'],
  ])(
    'runs a federation (secure aggregation %s) and prints one JSON object as its last stdout line',
    async (mode, lines, budget) => {
      const out = mkdtempSync(join(tmpdir(), 'trib-demo-'));
      const p = spawnTs('examples/demo.ts', [
        '--example',
        'tabular',
        '--clients',
        '3',
        '--rounds',
        '3',
        '--partition',
        'dirichlet:1',
        '--seed',
        '3',
        '--secure-aggregation',
        String(mode),
        '--budget-wei',
        String(budget),
        '--out',
        out,
        '--json',
      ]);
      expect(await p.exit).toBe(0);
      const result = JSON.parse(p.lines[p.lines.length - 1]);
      expect(result).toMatchObject({
        example: 'tabular',
        clients: 3,
        rounds: 3,
        partition: 'dirichlet:1',
        seed: 3,
        secureAggregation: mode,
        status: 'completed',
      });
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
      // The escrow on the demo's own anvil: funded, settled and fully paid out or refunded.
      expect(result.chain.escrow).toMatch(/^0x[0-9a-fA-F]{40}$/);
      expect(result.chain.budgetWei).toBe(budget);
      if (mode === 'secagg') expect(result.chain.refundedWei).toBe('0');
      expect(BigInt(result.chain.paidWei) + BigInt(result.chain.refundedWei)).toBe(BigInt(result.chain.budgetWei));
      expect(BigInt(result.chain.paidWei)).toBeGreaterThan(0n);
      expect(result.contributors).toHaveLength(3);
      let payoutSum = 0n;
      for (const c of result.contributors as Array<{ id: string; address: string; score: number; payoutWei: string }>) {
        expect(c.id).toMatch(/^[0-9a-f]{64}$/);
        expect(c.address).toMatch(/^0x[0-9a-fA-F]{40}$/);
        // Contribution scores: a client whose data did not help scores <= 0 and is paid nothing.
        expect(Number.isFinite(c.score)).toBe(true);
        if (c.score <= 0) expect(c.payoutWei).toBe('0');
        payoutSum += BigInt(c.payoutWei);
      }
      expect(payoutSum).toBe(BigInt(result.chain.paidWei));
      // 3 clients under secagg form one cohort per round: the scores can only split by participation.
      expect(result.contributionMethod).toMatch(mode === 'none' ? /^shapley \(loss\)$/ : /^participation \(loss;/);
    },
  );

  it('skips the chain with --no-chain', async () => {
    const out = mkdtempSync(join(tmpdir(), 'trib-demo-'));
    const p = spawnTs('examples/demo.ts', [
      '--example',
      'tabular',
      '--clients',
      '2',
      '--rounds',
      '1',
      '--secure-aggregation',
      'none',
      '--no-chain',
      '--out',
      out,
      '--json',
    ]);
    expect(await p.exit).toBe(0);
    const result = JSON.parse(p.lines[p.lines.length - 1]);
    expect(result.status).toBe('completed');
    expect(result.chain).toBeUndefined();
    // Scores without payouts: no addresses.
    expect(result.contributors).toHaveLength(2);
    expect(result.contributors.every((c: { address?: string }) => c.address === undefined)).toBe(true);
  });

  it('plants free-riders with --free-rider N: marked in the JSON, and they earn nothing', async () => {
    const out = mkdtempSync(join(tmpdir(), 'trib-demo-'));
    const p = spawnTs('examples/demo.ts', [
      '--example',
      'tabular',
      '--clients',
      '3',
      '--rounds',
      '3',
      '--seed',
      '3',
      '--secure-aggregation',
      'none',
      '--no-chain',
      '--free-rider',
      '1',
      '--out',
      out,
      '--json',
    ]);
    expect(await p.exit).toBe(0);
    const result = JSON.parse(p.lines[p.lines.length - 1]);
    const contributors = result.contributors as Array<{
      index: number;
      score: number;
      share: number;
      freeRider?: boolean;
    }>;
    expect(contributors.map((c) => c.freeRider ?? false)).toEqual([false, false, true]);
    expect(contributors[2].share).toBeLessThanOrEqual(0.02);
    expect(contributors.reduce((s, c) => s + c.share, 0)).toBeCloseTo(1, 9);
  });

  it('trains with --dp-epsilon: the JSON reports the epsilon the rounds spent, within the budget', async () => {
    const out = mkdtempSync(join(tmpdir(), 'trib-demo-'));
    const p = spawnTs('examples/demo.ts', [
      '--example',
      'tabular',
      '--clients',
      '3',
      '--rounds',
      '2',
      '--no-chain',
      '--dp-epsilon',
      '8',
      '--out',
      out,
      '--json',
    ]);
    expect(await p.exit).toBe(0);
    const result = JSON.parse(p.lines[p.lines.length - 1]);
    expect(result.status).toBe('completed');
    expect(result.privacy).toMatchObject({
      delta: 1e-5,
      samplingRate: 1,
      rounds: 2,
      // secagg's default: each client adds its share of the noise inside SecAgg+.
      noise: 'distributed',
      epsilonBudget: 8,
    });
    // The noise multiplier was derived so the 2 planned rounds spend the budget (within the bisection's 0.01 %).
    expect(result.privacy.epsilon).toBeLessThanOrEqual(8);
    expect(result.privacy.epsilon).toBeGreaterThan(7.9);
    expect(result.privacy.noiseMultiplier).toBeGreaterThan(0);
    const csv = readFileSync(join(out, 'rounds.csv'), 'utf8').trim().split('\n');
    expect(csv[0]).toMatch(/,epsilon$/);
    const epsilons = csv.slice(1).map((line) => Number(line.split(',').pop()));
    expect(epsilons[0]).toBeGreaterThan(0);
    expect(epsilons[1]).toBeCloseTo(result.privacy.epsilon, 9);
  });

  it('refuses --dp-epsilon where the mode cannot add the noise, and bad budgets, saying what was expected', async () => {
    const distributedOnNone = spawnTs('examples/demo.ts', [
      '--secure-aggregation',
      'none',
      '--dp-epsilon',
      '3',
      '--dp-noise',
      'distributed',
    ]);
    expect(await distributedOnNone.exit).toBe(2);
    expect(distributedOnNone.stderr.join('\n')).toMatch(/--dp-noise distributed .* needs --secure-aggregation secagg/);
    const badEpsilon = spawnTs('examples/demo.ts', ['--dp-epsilon', '-1']);
    expect(await badEpsilon.exit).toBe(2);
    expect(badEpsilon.stderr.join('\n')).toMatch(/--dp-epsilon must be a number in \(0, 100\], got -1/);
  });

  it('rejects bad flags with a message that says what was expected', async () => {
    const p = spawnTs('examples/demo.ts', ['--partition', 'dirichlet:-1']);
    expect(await p.exit).toBe(2);
    expect(p.stderr.join('\n')).toMatch(/--partition must be iid, dirichlet:<alpha > 0> or shards/);
  });
});
