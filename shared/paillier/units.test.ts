import { generatePaillierKeys } from './packedPaillier';
import { firstNonUnit } from './units';

jest.setTimeout(30_000);

describe('firstNonUnit', () => {
  it('passes honest ciphertexts and names the first ciphertext sharing a factor with n', async () => {
    const { publicKey, privateKey } = await generatePaillierKeys(1024);
    const n = publicKey.n;
    const honest = Array.from({ length: 37 }, (_, i) => publicKey.encrypt(BigInt(i)));
    expect(firstNonUnit(honest, n)).toBeNull();
    expect(firstNonUnit([], n)).toBeNull();
    const { _p: p, _q: q } = privateKey as unknown as { _p: bigint; _q: bigint };
    // c = n, a multiple of n below n², a multiple of p or of q alone: every non-unit is found, wherever it sits.
    for (const bad of [n, 7n * n, p * 12345n, q, n * n - 1n - ((n * n - 1n) % q)]) {
      for (const at of [0, 1, 17, 36]) {
        const list = [...honest];
        list[at] = bad;
        expect(firstNonUnit(list, n)).toBe(at);
      }
    }
    const twice = [...honest];
    twice[30] = n;
    twice[5] = p;
    expect(firstNonUnit(twice, n)).toBe(5);
  });
});
