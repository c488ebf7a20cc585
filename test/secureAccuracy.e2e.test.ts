/**
 * The product promise of secure aggregation costs no accuracy: a full MNIST federation (real digits,
 * the demo's CNN, three client processes on loopback, IID split) in `secagg` and in `paillier` reaches
 * the plaintext (`none`) job's test accuracy within one percentage point. Same seed, same data and same
 * model initialisation in every mode, so the only difference is each mode's quantisation.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runFederation, type FederationResult } from '../examples/federation';
import { mnistTask } from '../examples/mnist/task';

jest.setTimeout(600_000);

const MODES = ['none', 'secagg', 'paillier'] as const;

describe('MNIST accuracy in each secure-aggregation mode', () => {
  const results = new Map<string, FederationResult>();

  it.each(MODES)('runs the MNIST federation with secureAggregation %s', async (mode) => {
    const result = await runFederation(mnistTask, {
      clients: 3,
      rounds: 3,
      partition: { kind: 'iid' },
      seed: 0,
      backend: 'auto',
      secureAggregation: mode,
      outDir: mkdtempSync(join(tmpdir(), `trib-accuracy-${mode}-`)),
    });
    expect(result.status).toBe('completed');
    expect(result.secureAggregation).toBe(mode);
    expect(result.accuracyByRound).toHaveLength(3);
    // It learned: well above the 10 % of guessing a digit.
    expect(result.finalAccuracy).toBeGreaterThan(0.8);
    results.set(mode, result);
  });

  it('secagg and paillier reach the plaintext test accuracy within 1 percentage point', () => {
    const plain = results.get('none');
    expect(plain).toBeDefined();
    for (const mode of ['secagg', 'paillier']) {
      const secure = results.get(mode);
      expect(secure).toBeDefined();
      expect(Math.abs(secure!.finalAccuracy - plain!.finalAccuracy)).toBeLessThanOrEqual(0.01);
    }
    // eslint-disable-next-line no-console
    console.log(
      `MNIST 3 clients x 3 rounds, test accuracy: ${MODES.map((m) => `${m} ${(results.get(m)!.finalAccuracy * 100).toFixed(2)} %`).join(', ')}; ` +
        `seconds per round: ${MODES.map(
          (m) =>
            `${m} ${results
              .get(m)!
              .roundSeconds.map((s) => s.toFixed(1))
              .join('/')}`,
        ).join(', ')}`,
    );
  });
});
