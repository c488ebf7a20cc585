import { first, meansOf } from '../testParts';
import { bulyan, meanClosestToMedian } from './bulyan';

describe('Bulyan (El Mhamdi et al. 2018)', () => {
  // f = 1, n = 7: theta = 5 parts chosen by repeated Krum, beta = 3 averaged per coordinate.
  // a..g = 0, 1, 2, 3, 4, 5, 1000. Selection (scores over the remaining parts, ties to the earlier id):
  //  r=7, 4 neighbours: c 10 = d 10 -> c;  r=6, 3: d 9 -> d;  r=5, 2: b 10 = e 10 -> b;
  //  r=4, 1: e 1 = f 1 -> e;  r=3, 1: a 25 = f 25 -> a.  Chosen values 2, 3, 1, 4, 0: median 2,
  //  the 3 closest to it are 1, 2, 3 (0 and 4 tie at distance 2; the larger goes first) -> 2.
  const vectors = [[0], [1], [2], [3], [4], [5], [1000]];

  it('selects theta = n - 2f parts by repeated Krum and averages the beta closest to the median', () => {
    const r = bulyan(meansOf(vectors), 1);
    expect(r.selected).toEqual([2, 3, 1, 4, 0]);
    expect(first(r.update)).toEqual([2]);
  });

  it('needs n >= 4f + 3: 6 parts are refused for f = 1, 7 accepted', () => {
    expect(() => bulyan(meansOf(vectors.slice(0, 6)), 1)).toThrow(/n >= 4f \+ 3/);
    expect(() => bulyan(meansOf(vectors), 1)).not.toThrow();
    expect(() => bulyan(meansOf([[0], [1], [2], [3], [4], [5], [6], [7], [8], [9]]), 2)).toThrow(/4f \+ 3/);
  });

  it('with f = 0 it is the plain mean of all parts', () => {
    expect(first(bulyan(meansOf([[1], [2], [6]]), 0).update)).toEqual([3]);
  });

  it('averages the beta values closest to the median, which is neither the mean nor the trimmed mean', () => {
    // 0, 0, 1, 5, 6: median 1; closest three 0, 0, 1 -> 1/3 (mean 2.4, trimmed mean of 0, 1, 5 = 2)
    expect(meanClosestToMedian(Float64Array.from([0, 0, 1, 5, 6]), 3)).toBeCloseTo(1 / 3, 12);
    // 0, 1, 2, 3, 4: 0 and 4 tie at distance 2, 4 goes first, then 0 -> 1, 2, 3
    expect(meanClosestToMedian(Float64Array.from([0, 1, 2, 3, 4]), 3)).toBe(2);
    // even count: median 2.5 of 0, 2, 3, 10 -> 2, 3
    expect(meanClosestToMedian(Float64Array.from([0, 2, 3, 10]), 2)).toBe(2.5);
  });

  it('drops a coordinate outlier that got into the selection', () => {
    const r = bulyan(
      meansOf([
        [0, 0],
        [1, 0],
        [2, 0],
        [3, 0],
        [4, 9],
        [5, 0],
        [1000, 0],
      ]),
      1,
    );
    expect(r.selected).not.toContain(6);
    expect(r.update[0][1]).toBe(0);
  });
});
