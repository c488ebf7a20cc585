import { first, meansOf } from '../testParts';
import { trimmedMean } from './trimmedMean';

describe('coordinate-wise trimmed mean (Yin et al. 2018)', () => {
  it('drops the f largest and f smallest values of each coordinate and averages the rest', () => {
    // coordinate 0: -50, 1, 2, 3, 100 -> (1 + 2 + 3) / 3; coordinate 1: 0, 0, 9, 9, 9 -> (0 + 9 + 9) / 3
    const out = first(
      trimmedMean(
        meansOf([
          [1, 0],
          [2, 9],
          [3, 9],
          [100, 0],
          [-50, 9],
        ]),
        1,
      ),
    );
    expect(out).toEqual([2, 6]);
  });

  it('trims f = 2 from each end', () => {
    expect(first(trimmedMean(meansOf([[-9], [-8], [1], [2], [3], [8], [9]]), 2))).toEqual([2]);
  });

  it('needs n > 2f: n = 2f is refused, n = 2f + 1 is the median', () => {
    expect(() => trimmedMean(meansOf([[1], [2]]), 1)).toThrow(/n > 2f/);
    expect(first(trimmedMean(meansOf([[1], [5], [1000]]), 1))).toEqual([5]);
  });
});
