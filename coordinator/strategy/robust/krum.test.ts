import { first, meansOf, part } from '../testParts';
import { krum, krumScores, multiKrum, pairwiseSquaredDistances } from './krum';
import { partMeansOf } from './partMeans';

// Five one-dimensional parts a..e = 0, 1, 2, 3, 100; f = 1, so each score sums the n - f - 2 = 2
// nearest squared distances: a 1+4 = 5, b 1+1 = 2, c 1+1 = 2, d 1+4 = 5, e 97²+98² = 19013.
const vectors = [[0], [1], [2], [3], [100]];

describe('Krum and Multi-Krum (Blanchard et al. 2017)', () => {
  it('scores each part by its n - f - 2 nearest squared distances', () => {
    const means = meansOf(vectors);
    expect(krumScores(pairwiseSquaredDistances(means), [0, 1, 2, 3, 4], 1)).toEqual([5, 2, 2, 5, 97 ** 2 + 98 ** 2]);
  });

  it('picks the lowest score; a tie goes to the first part in member-id order, whatever the arrival order', () => {
    expect(krum(meansOf(vectors), 1)).toEqual({ selected: [1], update: [Float64Array.from([1])] });
    const shuffled = [part('e', [[100]]), part('c', [[2]]), part('a', [[0]]), part('d', [[3]]), part('b', [[1]])];
    const means = partMeansOf(shuffled, [1]);
    const r = krum(means, 1);
    expect(means[r.selected[0]].members).toEqual(['b']);
    expect(first(r.update)).toEqual([1]);
  });

  it('needs n > 2f + 2: n = 2f + 2 is refused, n = 2f + 3 works', () => {
    expect(() => krum(meansOf([[0], [1], [2], [3]]), 1)).toThrow(/n > 2f \+ 2/);
    expect(first(krum(meansOf(vectors), 1).update)).toEqual([1]);
    expect(() => krum(meansOf([[0], [1]]), 0)).toThrow(/n > 2f \+ 2/);
    // f = 0, n = 3, one neighbour each: a 4, b 1, c 1 -> b (tie with c, b first)
    expect(first(krum(meansOf([[0], [2], [3]]), 0).update)).toEqual([2]);
  });

  it('Multi-Krum averages the m best-scored parts, unweighted (default m = n - f)', () => {
    // m = 3: b, c, then a (tied with d at 5, a first) -> (1 + 2 + 0) / 3
    expect(first(multiKrum(meansOf(vectors), 1, 3).update)).toEqual([1]);
    // m = n - f = 4: b, c, a, d -> 1.5; e's weight of 1e9 buys it nothing
    const r = multiKrum(meansOf(vectors, [1, 1, 1, 1, 1e9]), 1);
    expect(r.selected).toEqual([1, 2, 0, 3]);
    expect(first(r.update)).toEqual([1.5]);
    expect(() => multiKrum(meansOf(vectors), 1, 6)).toThrow(/m <= n/);
  });

  it('uses the squared distance over every tensor', () => {
    const two = partMeansOf([part('a', [[0], [0]]), part('b', [[3], [4]]), part('c', [[0], [1]])], [1, 1]);
    expect(Array.from(pairwiseSquaredDistances(two)[0])).toEqual([0, 25, 1]);
  });
});
