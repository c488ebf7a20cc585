import { classCounts } from './dataset';
import { loadMnist, MNIST_SIZE } from './mnist';

describe('loadMnist', () => {
  it('returns [28, 28, 1] digits with pixels in [0, 1] and labels 0-9', () => {
    const ds = loadMnist({ count: 500 });
    expect(ds.count).toBe(500);
    expect(ds.exampleShape).toEqual([28, 28, 1]);
    expect(ds.x.length).toBe(500 * 784);
    expect(ds.x.reduce((m, v) => Math.min(m, v), Infinity)).toBe(0);
    expect(ds.x.reduce((m, v) => Math.max(m, v), -Infinity)).toBeLessThanOrEqual(1);
    expect(ds.x.some((v) => v > 0 && v < 1)).toBe(true);
    expect(classCounts(ds, 10).every((n) => n > 20)).toBe(true);
  });

  it('is deterministic for a seed, and offsets give disjoint slices', () => {
    const a = loadMnist({ count: 100, seed: 5 });
    expect(Array.from(loadMnist({ count: 100, seed: 5 }).x)).toEqual(Array.from(a.x));
    expect(Array.from(loadMnist({ count: 100, seed: 6 }).x)).not.toEqual(Array.from(a.x));
    const all = loadMnist({ seed: 5 });
    expect(all.count).toBe(MNIST_SIZE);
    const tail = loadMnist({ offset: 100, count: 50, seed: 5 });
    expect(Array.from(tail.x)).toEqual(Array.from(all.x.slice(100 * 784, 150 * 784)));
  });
});
