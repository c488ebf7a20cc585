import { createRng, deriveSeed, dirichletSample, gammaSample, permutation } from './random';

describe('random', () => {
  it('is deterministic per seed and differs between seeds', () => {
    const a = createRng(42);
    const b = createRng(42);
    const c = createRng(43);
    const seqA = Array.from({ length: 5 }, a);
    expect(Array.from({ length: 5 }, b)).toEqual(seqA);
    expect(Array.from({ length: 5 }, c)).not.toEqual(seqA);
    for (const v of seqA) expect(v >= 0 && v < 1).toBe(true);
  });

  it('produces permutations', () => {
    const p = permutation(100, createRng(1));
    expect(Array.from(p).sort((x, y) => x - y)).toEqual(Array.from({ length: 100 }, (_, i) => i));
  });

  it('derives distinct, stable seeds from labels', () => {
    expect(deriveSeed(0, 'conv1', 'kernel')).toBe(deriveSeed(0, 'conv1', 'kernel'));
    expect(deriveSeed(0, 'conv1', 'kernel')).not.toBe(deriveSeed(0, 'conv2', 'kernel'));
    expect(deriveSeed(0, 'ab', 'c')).not.toBe(deriveSeed(0, 'a', 'bc'));
    expect(deriveSeed(1, 'conv1')).not.toBe(deriveSeed(2, 'conv1'));
  });

  it.each([0.3, 1, 4.5])('gamma(%p) has mean ≈ shape', (shape) => {
    const rng = createRng(7);
    let sum = 0;
    const n = 20000;
    for (let i = 0; i < n; i++) sum += gammaSample(shape, rng);
    expect(sum / n).toBeCloseTo(shape, 1);
  });

  it('dirichlet samples sum to 1', () => {
    const rng = createRng(3);
    for (const alpha of [0.01, 0.5, 10]) {
      const p = dirichletSample(8, alpha, rng);
      expect(p.reduce((s, v) => s + v, 0)).toBeCloseTo(1, 10);
    }
  });
});
