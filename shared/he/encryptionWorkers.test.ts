import { codeOfAsync } from '../../test/support/codeOf';
import {
  generateHeKeys,
  HE_PARAMETER_SETS,
  HeDecryptor,
  HeEncryptionPool,
  HeEncryptor,
  CiphertextSum,
  ciphertextLayout,
} from './index';

jest.setTimeout(120_000);

describe.each(['bgv-4096', 'bfv-4096'] as const)('HeEncryptionPool (%s)', (name) => {
  const set = HE_PARAMETER_SETS[name];
  const params = { set, bits: 16, clipRange: 1 };

  it('encrypts in worker threads what decrypts like the in-thread encryptor, calls in parallel', async () => {
    const keys = await generateHeKeys(set);
    const pool = new HeEncryptionPool(set, keys.publicKey, 2);
    const local = await HeEncryptor.create(set, keys.publicKey);
    const decryptor = await HeDecryptor.create(set, keys.secretKey);
    try {
      const vectors = [0, 1, 2].map((k) =>
        Float32Array.from({ length: 5000 }, (_, i) => Math.sin(i * 0.1 + k) * (k === 2 ? 1.5 : 0.9)),
      );
      const fromPool = await Promise.all(vectors.map((v) => pool.encrypt(v, params)));
      expect(fromPool.map((e) => e.clipped)).toEqual(vectors.map((v) => local.encrypt(v, params).clipped));
      expect(fromPool[2].clipped).toBeGreaterThan(0);
      for (const [k, e] of fromPool.entries()) {
        const mine = decryptor.decryptSum(e.ciphertexts, params, 1, 5000).sums;
        const theirs = decryptor.decryptSum(local.encrypt(vectors[k], params).ciphertexts, params, 1, 5000).sums;
        expect([...mine]).toEqual([...theirs]);
      }
      // The pool's ciphertexts are valid summands.
      const sum = new CiphertextSum(ciphertextLayout(set), 2);
      for (const e of fromPool) sum.add(e.ciphertexts);
      expect(decryptor.decryptSum(sum.toBytes(), params, 3, 5000).sums.length).toBe(5000);
    } finally {
      await pool.close();
      local.delete();
      decryptor.delete();
    }
    expect(pool.usable).toBe(false);
    expect(await codeOfAsync(() => pool.encrypt([1], params))).toBe('INTERNAL');
  });

  it('refuses a public key of the wrong layout before starting any worker', () => {
    expect(() => new HeEncryptionPool(set, new Uint8Array(10))).toThrow(/public key is/);
  });
});
