import { classCounts, type Dataset } from './dataset';
import {
  partitionDirichlet,
  partitionIid,
  partitionIndicesDirichlet,
  partitionIndicesIid,
  partitionIndicesShards,
  partitionShards,
} from './partition';

/** 1,000 examples, 10 classes of 100, feature = own index so examples can be identified. */
function dataset(): Dataset {
  const count = 1000;
  return {
    x: Float32Array.from({ length: count }, (_, i) => i),
    y: Int32Array.from({ length: count }, (_, i) => i % 10),
    count,
    exampleShape: [1],
  };
}

function expectDisjointCover(parts: Int32Array[], count: number) {
  const all = parts.flatMap((p) => Array.from(p)).sort((a, b) => a - b);
  expect(all).toEqual(Array.from({ length: count }, (_, i) => i));
}

describe('partitioners', () => {
  const ds = dataset();
  const cases: Array<[string, (seed: number) => Int32Array[]]> = [
    ['iid', (seed) => partitionIndicesIid(ds.count, 7, seed)],
    ['dirichlet', (seed) => partitionIndicesDirichlet(ds.y, 7, 0.3, seed)],
    ['shards', (seed) => partitionIndicesShards(ds.y, 7, 2, seed)],
  ];

  it.each(cases)('%s: deterministic under a seed, disjoint, covering every example', (_, split) => {
    const a = split(1);
    expect(split(1)).toEqual(a);
    expect(split(2)).not.toEqual(a);
    expect(a).toHaveLength(7);
    expectDisjointCover(a, ds.count);
    for (const part of a) expect(part.length).toBeGreaterThan(0);
  });

  it('iid parts differ in size by at most one', () => {
    const sizes = partitionIid(ds, 7, 0).map((d) => d.count);
    expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(1);
  });

  it('dirichlet with small alpha concentrates classes; large alpha spreads them', () => {
    const dominantShare = (alpha: number) => {
      const parts = partitionDirichlet(ds, 5, alpha, 3);
      const shares = parts.map((p) => Math.max(...classCounts(p, 10)) / p.count);
      return shares.reduce((s, v) => s + v, 0) / shares.length;
    };
    expect(dominantShare(0.05)).toBeGreaterThan(0.5);
    expect(dominantShare(1000)).toBeLessThan(0.2);
  });

  it('shards give each client at most shardsPerClient classes when shards are class-pure', () => {
    const parts = partitionShards(ds, 5, 2, 9);
    for (const p of parts) expect(classCounts(p, 10).filter((n) => n > 0).length).toBeLessThanOrEqual(2);
    expect(parts.reduce((n, p) => n + p.count, 0)).toBe(ds.count);
  });

  it('client datasets carry the right examples', () => {
    const parts = partitionIid(ds, 3, 4);
    for (const p of parts) for (let i = 0; i < p.count; i++) expect(p.y[i]).toBe(p.x[i] % 10);
  });

  it('rejects impossible splits', () => {
    expect(() => partitionIid(ds, 0, 0)).toThrow(RangeError);
    expect(() => partitionIid(ds, 1001, 0)).toThrow(RangeError);
    expect(() => partitionDirichlet(ds, 3, 0, 0)).toThrow(RangeError);
    expect(() => partitionShards(ds, 600, 2, 0)).toThrow(RangeError);
  });
});
