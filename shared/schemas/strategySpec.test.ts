import { JobSpecSchema } from './jobSpec';
import { StrategySpecSchema } from './strategySpec';

describe('strategy spec', () => {
  it('keeps the wire shape of existing jobs and fills defaults', () => {
    expect(StrategySpecSchema.parse({ name: 'fedavg' })).toEqual({ name: 'fedavg' });
    expect(StrategySpecSchema.parse({ name: 'fedprox', mu: 0.1 })).toEqual({ name: 'fedprox', mu: 0.1 });
    expect(StrategySpecSchema.parse({ name: 'fedadam' })).toEqual({
      name: 'fedadam',
      serverLearningRate: 0.01,
      beta1: 0.9,
      beta2: 0.99,
      tau: 1e-3,
    });
    const base = {
      name: 'x',
      model: { kind: 'builtin', name: 'mlp' },
      input: { shape: [2], numClasses: 2 },
      rounds: 1,
    };
    expect(JobSpecSchema.parse(base).strategy).toEqual({ name: 'fedavg' });
  });

  it('parses the new optimisers with their defaults', () => {
    expect(StrategySpecSchema.parse({ name: 'fedyogi' })).toEqual({
      name: 'fedyogi',
      serverLearningRate: 0.01,
      beta1: 0.9,
      beta2: 0.99,
      tau: 1e-3,
    });
    expect(StrategySpecSchema.parse({ name: 'fedadagrad' })).toEqual({
      name: 'fedadagrad',
      serverLearningRate: 0.01,
      beta1: 0,
      tau: 1e-3,
    });
    expect(StrategySpecSchema.parse({ name: 'fedavgm' })).toEqual({
      name: 'fedavgm',
      serverLearningRate: 1,
      momentum: 0.9,
    });
  });

  it('parses robust rules with defaults, and the norm bound, on any optimiser', () => {
    expect(StrategySpecSchema.parse({ name: 'fedavg', robust: { rule: 'krum' }, maxUpdateNorm: 5 })).toEqual({
      name: 'fedavg',
      robust: { rule: 'krum', f: 1 },
      maxUpdateNorm: 5,
    });
    expect(StrategySpecSchema.parse({ name: 'fedyogi', robust: { rule: 'centered-clipping', tau: 2 } }).robust).toEqual(
      {
        rule: 'centered-clipping',
        tau: 2,
        iterations: 1,
      },
    );
    expect(StrategySpecSchema.parse({ name: 'fedavg', robust: { rule: 'multi-krum', f: 2, m: 3 } }).robust).toEqual({
      rule: 'multi-krum',
      f: 2,
      m: 3,
    });
  });

  it.each([
    [{ name: 'fedavg', robust: { rule: 'krum', f: -1 } }, 'robust.f'],
    [{ name: 'fedavg', robust: { rule: 'krum', f: 1.5 } }, 'robust.f'],
    [{ name: 'fedavg', robust: { rule: 'trimmed-mean', f: 0 } }, 'robust.f'],
    [{ name: 'fedavg', robust: { rule: 'centered-clipping' } }, 'robust.tau'],
    [{ name: 'fedavg', robust: { rule: 'centered-clipping', tau: 1, iterations: 0 } }, 'robust.iterations'],
    [{ name: 'fedavg', robust: { rule: 'multi-krum', m: 0 } }, 'robust.m'],
    [{ name: 'fedavg', robust: { rule: 'krum', F: 1 } }, 'robust'],
    [{ name: 'fedavg', robust: { rule: 'mean' } }, 'robust.rule'],
    [{ name: 'fedavg', maxUpdateNorm: 0 }, 'maxUpdateNorm'],
    [{ name: 'fedavgm', momentum: 1 }, 'momentum'],
    [{ name: 'fedyogi', beta2: 1 }, 'beta2'],
    [{ name: 'fedadagrad', tau: 0 }, 'tau'],
  ])('refuses %j at %s', (input, path) => {
    const r = StrategySpecSchema.safeParse(input);
    expect(r.success).toBe(false);
    expect(r.error?.issues.map((i) => i.path.join('.'))).toContain(path);
  });
});
