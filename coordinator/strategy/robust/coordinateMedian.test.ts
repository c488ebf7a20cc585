import { first, meansOf } from '../testParts';
import { coordinateMedian, medianOfSorted } from './coordinateMedian';

describe('coordinate-wise median (Yin et al. 2018)', () => {
  it('takes each coordinate’s middle value for an odd count', () => {
    // coordinate 0: 1, 2, 100 -> 2; coordinate 1: 10, -5, 0 -> 0
    expect(
      first(
        coordinateMedian(
          meansOf([
            [1, 10],
            [2, -5],
            [100, 0],
          ]),
        ),
      ),
    ).toEqual([2, 0]);
  });

  it('averages the two middle values for an even count, and ties are just equal values', () => {
    expect(
      first(
        coordinateMedian(
          meansOf([
            [7, 4],
            [1, 4],
            [5, 4],
            [3, 4],
          ]),
        ),
      ),
    ).toEqual([4, 4]);
    expect(medianOfSorted(Float64Array.from([1, 2, 2, 9]))).toBe(2);
  });

  it('ignores part weights: a client declaring 1e9 examples is one vote', () => {
    const means = meansOf([[1], [2], [100]], [1, 1, 1e9]);
    expect(first(coordinateMedian(means))).toEqual([2]);
  });

  it('works on each part’s mean (sum / weight), per tensor', () => {
    // parts with weights 2, 4, 8 and mean updates 3, -1, 0.5: the median of the means is 0.5
    expect(first(coordinateMedian(meansOf([[3], [-1], [0.5]], [2, 4, 8])))).toEqual([0.5]);
  });
});
