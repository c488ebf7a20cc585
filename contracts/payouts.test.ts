import { StandardMerkleTree } from '@openzeppelin/merkle-tree';
import { ZeroHash } from 'ethers';
import fc from 'fast-check';
import { computePayouts } from './payouts';

const addr = (i: number) => `0x${(i + 1).toString(16).padStart(40, '0')}`;

test('proportional split with integer division; dust goes to the buyer', () => {
  const p = computePayouts(1000n, [
    { account: addr(0), score: 2 },
    { account: addr(1), score: 1 },
  ]);
  expect(p.allocations.map((a) => a.amount)).toEqual([666n, 333n]);
  expect(p.total).toBe(999n);
  expect(p.dust).toBe(1n);
  for (const a of p.allocations)
    expect(StandardMerkleTree.verify(p.root, ['address', 'uint256'], [a.account, a.amount], a.proof)).toBe(true);
});

test('zero scores get no leaf; all-zero scores pay nothing', () => {
  const p = computePayouts(100n, [
    { account: addr(0), score: 0 },
    { account: addr(1), score: 5n },
  ]);
  expect(p.allocations).toHaveLength(1);
  expect(p.total).toBe(100n);
  expect(computePayouts(100n, [{ account: addr(0), score: 0 }])).toMatchObject({
    root: ZeroHash,
    total: 0n,
    dust: 100n,
    allocations: [],
  });
});

test('rejects duplicates, negative and non-finite scores', () => {
  expect(() =>
    computePayouts(1n, [
      { account: addr(0), score: 1 },
      { account: addr(0).toUpperCase().replace('0X', '0x'), score: 1 },
    ]),
  ).toThrow(/duplicate/);
  expect(() => computePayouts(1n, [{ account: addr(0), score: -1 }])).toThrow(RangeError);
  expect(() => computePayouts(1n, [{ account: addr(0), score: Number.NaN }])).toThrow(RangeError);
});

test('property: total + dust == pool, dust < number of contributors, every proof verifies', () => {
  fc.assert(
    fc.property(
      fc.bigInt({ min: 0n, max: 10n ** 30n }),
      fc.array(fc.bigInt({ min: 0n, max: 10n ** 12n }), { minLength: 1, maxLength: 12 }),
      (pool, scores) => {
        const p = computePayouts(
          pool,
          scores.map((score, i) => ({ account: addr(i), score })),
        );
        expect(p.total + p.dust).toBe(pool);
        if (scores.some((s) => s > 0n)) expect(p.dust).toBeLessThan(BigInt(scores.length));
        for (const a of p.allocations)
          expect(StandardMerkleTree.verify(p.root, ['address', 'uint256'], [a.account, a.amount], a.proof)).toBe(true);
      },
    ),
    { numRuns: 50 },
  );
});
