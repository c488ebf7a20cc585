import { l2Norm } from './clipping';
import { paddedLength, rotate, unrotate } from './hadamardRotation';
import { seededRandom } from './randomSource';

describe('randomized Hadamard rotation', () => {
  it('pads to the next power of two', () => {
    expect([0, 1, 2, 3, 1000, 1024, 1025].map(paddedLength)).toEqual([1, 1, 2, 4, 1024, 1024, 2048]);
  });

  it('is orthonormal: norms are kept and unrotate inverts rotate', () => {
    const random = seededRandom('rotation');
    for (const length of [1, 5, 1000, 4096]) {
      const x = Float64Array.from({ length }, () => random.uniform() - 0.5);
      const y = rotate(x, 'round-1');
      expect(y.length).toBe(paddedLength(length));
      expect(l2Norm(y)).toBeCloseTo(l2Norm(x), 10);
      const back = unrotate(y, length, 'round-1');
      for (let i = 0; i < length; i++) expect(back[i]).toBeCloseTo(x[i], 12);
    }
  });

  it('flattens a spike: every coordinate of a rotated basis vector is +-1/sqrt(n)', () => {
    const x = new Float64Array(1024);
    x[17] = 3;
    const y = rotate(x, 'spike');
    for (const v of y) expect(Math.abs(v)).toBeCloseTo(3 / 32, 12);
  });

  it('depends on the seed, and the wrong seed does not invert it', () => {
    const x = Float64Array.from({ length: 64 }, (_, i) => Math.sin(i));
    expect(Array.from(rotate(x, 'a'))).not.toEqual(Array.from(rotate(x, 'b')));
    const wrong = unrotate(rotate(x, 'a'), 64, 'b');
    expect(Math.max(...wrong.map((v, i) => Math.abs(v - x[i])))).toBeGreaterThan(0.1);
  });
});
