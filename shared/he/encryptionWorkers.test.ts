import { codeOfAsync } from '../../test/support/codeOf';
import {
  generateHeKeys,
  HE_PARAMETER_SETS,
  HeDecryptor,
  HeEncryptionPool,
  HeEncryptor,
  CiphertextSum,
  ciphertextLayout,
  defaultHeEncryptionThreads,
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

  it('encrypts with encryptions of zero made ahead: same plaintexts, fresh ciphertexts, same noise, valid summands', async () => {
    const keys = await generateHeKeys(set);
    const pool = new HeEncryptionPool(set, keys.publicKey, 1);
    const local = await HeEncryptor.create(set, keys.publicKey);
    const decryptor = await HeDecryptor.create(set, keys.secretKey);
    try {
      const length = set.polyModulusDegree + 100; // two ciphertexts
      const vector = Float32Array.from({ length }, (_, i) => Math.cos(i * 0.3) * 0.8);
      const first = await pool.encrypt(vector, params);
      expect(first.precomputed).toBe(0); // the worker had no call to replace yet
      // The worker refills while idle; poll until a call finds both zeros in stock (bounded).
      let ahead = first;
      for (let i = 0; i < 200 && ahead.precomputed < 2; i++) {
        await new Promise((r) => setTimeout(r, 50));
        ahead = await pool.encrypt(vector, params);
      }
      expect(ahead.precomputed).toBe(2);
      const direct = local.encrypt(vector, params).ciphertexts;
      const fromStock = decryptor.decryptSum(ahead.ciphertexts, params, 1, length);
      const reference = decryptor.decryptSum(direct, params, 1, length);
      expect([...fromStock.sums]).toEqual([...reference.sums]);
      // Same noise as a direct encryption (one bit of slack for the sampled errors).
      expect(fromStock.noiseBudgetBits).toBeGreaterThanOrEqual(reference.noiseBudgetBits - 1);
      // A zero is used once: no ciphertext repeats across calls (a reused zero would repeat c1).
      const layout = ciphertextLayout(set);
      const c1 = (bytes: Uint8Array, c: number) =>
        Buffer.from(
          bytes.subarray((c + 1) * layout.bytes - 8 * set.polyModulusDegree, (c + 1) * layout.bytes),
        ).toString('hex');
      const seen = new Set([first, ahead].flatMap((e) => [c1(e.ciphertexts, 0), c1(e.ciphertexts, 1)]));
      expect(seen.size).toBe(4);
      // Summed with a direct encryption, it decrypts to twice the vector.
      const sum = new CiphertextSum(layout, 2);
      sum.add(ahead.ciphertexts);
      sum.add(direct);
      const twice = decryptor.decryptSum(sum.toBytes(), params, 2, length).sums;
      expect([...twice]).toEqual([...reference.sums].map((x) => x * 2));
    } finally {
      await pool.close();
      local.delete();
      decryptor.delete();
    }
  });

  it('cuts a call into one slice per thread, uneven ones included, and puts the ciphertexts back in order', async () => {
    const keys = await generateHeKeys(set);
    const local = await HeEncryptor.create(set, keys.publicKey);
    const decryptor = await HeDecryptor.create(set, keys.secretKey);
    const length = 2 * set.polyModulusDegree + 10; // three ciphertexts: 2 + 1 on two threads, 1 + 1 + 1 on three
    const vector = Float32Array.from({ length }, (_, i) => Math.sin(i * 0.7) * 0.9);
    const reference = decryptor.decryptSum(local.encrypt(vector, params).ciphertexts, params, 1, length).sums;
    try {
      for (const threads of [2, 3, 4]) {
        const pool = new HeEncryptionPool(set, keys.publicKey, threads);
        try {
          const { ciphertexts } = await pool.encrypt(vector, params);
          expect(ciphertexts.length).toBe(3 * ciphertextLayout(set).bytes);
          const sums = decryptor.decryptSum(ciphertexts, params, 1, length).sums;
          expect([threads, [...sums]]).toEqual([threads, [...reference]]);
        } finally {
          await pool.close();
        }
      }
    } finally {
      local.delete();
      decryptor.delete();
    }
  });

  it('refuses a public key of the wrong layout before starting any worker', () => {
    expect(() => new HeEncryptionPool(set, new Uint8Array(10))).toThrow(/public key is/);
  });
});

describe('defaultHeEncryptionThreads', () => {
  it('is min(2, cores - 1), at least 1', () => {
    expect([1, 2, 3, 4, 16].map((cores) => defaultHeEncryptionThreads(cores))).toEqual([1, 1, 2, 2, 2]);
  });
});
