import { first, meansOf } from '../testParts';
import { centeredClipping } from './centeredClipping';

describe('centered clipping (Karimireddy, He & Jaggi 2021)', () => {
  it('clips each part’s distance from the centre to tau and averages (one iteration from zero)', () => {
    // 0.5 stays, 3 -> 1, -4 -> -1: v = (0.5 + 1 - 1) / 3
    expect(first(centeredClipping(meansOf([[0.5], [3], [-4]]), undefined, 1, 1))[0]).toBeCloseTo(1 / 6, 12);
  });

  it('iterates from the previous iterate', () => {
    // second iteration from 1/6: 0.5 - 1/6 = 1/3 stays, the others clip to +1 and -1: v = 1/6 + (1/3)/3
    expect(first(centeredClipping(meansOf([[0.5], [3], [-4]]), undefined, 1, 2))[0]).toBeCloseTo(5 / 18, 12);
  });

  it('clips by the L2 norm over the whole vector, not per coordinate', () => {
    // [3, 4] has norm 5; with tau = 1 it contributes [0.6, 0.8] / n; [0, 0] contributes nothing
    const out = first(
      centeredClipping(
        meansOf([
          [3, 4],
          [0, 0],
        ]),
        undefined,
        1,
        1,
      ),
    );
    expect(out[0]).toBeCloseTo(0.3, 12);
    expect(out[1]).toBeCloseTo(0.4, 12);
  });

  it('starts from the given centre (the previous round’s update)', () => {
    // centre 10: diffs 0.5, 0, -110 -> 0.5, 0, -1: v = 10 + (0.5 - 1) / 3
    const out = first(centeredClipping(meansOf([[10.5], [10], [-100]]), [Float64Array.from([10])], 1, 1));
    expect(out[0]).toBeCloseTo(10 - 1 / 6, 12);
  });

  it('moves the centre by at most tau/n per iteration per part, however far the part is', () => {
    const honest = centeredClipping(meansOf([[0.1], [0.2], [0.3]]), undefined, 1, 1);
    const attacked = centeredClipping(meansOf([[0.1], [0.2], [0.3], [-1e30]]), undefined, 1, 1);
    // the attacker (1 of 4) adds at most tau/4 = 0.25 of pull on top of the honest parts' 3/4 share
    expect(Math.abs(attacked[0][0] - (honest[0][0] * 3) / 4)).toBeLessThanOrEqual(0.25 + 1e-12);
  });
});
