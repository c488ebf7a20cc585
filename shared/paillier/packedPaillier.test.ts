import { generateRandomKeys, type KeyPair } from 'paillier-bigint';
import {
  addEncrypted,
  ciphertextCount,
  createPackedPaillierParams,
  decryptSum,
  encryptVector,
  generatePaillierKeys,
  ParallelEncryptor,
  sumEncrypted,
  sumErrorBound,
} from './index';
import { codeOf, codeOfAsync } from '../../test/support/codeOf';

function randomVector(length: number, scale: number, seed: number): Float32Array {
  let s = seed;
  return Float32Array.from({ length }, () => {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    return (s / 2 ** 31 - 0.5) * 2 * scale;
  });
}

let keys: KeyPair;
const params = createPackedPaillierParams({ keyBits: 1024, bits: 16, clipRange: 0.5, maxClients: 8 });

beforeAll(async () => {
  keys = await generatePaillierKeys(1024);
});

describe('createPackedPaillierParams', () => {
  it('defaults to 2048-bit keys and 16 bits, and derives the layout and step', () => {
    const p = createPackedPaillierParams({ clipRange: 1, maxClients: 100 });
    expect(p).toMatchObject({
      keyBits: 2048,
      bits: 16,
      clipRange: 1,
      maxClients: 100,
      slotBits: 23,
      slotsPerCiphertext: 88,
    });
    expect(p.step).toBeCloseTo(1 / 32767, 15);
    expect(Object.isFrozen(p)).toBe(true);
    expect(ciphertextCount(p, 100_000)).toBe(1137);
    expect(params.slotsPerCiphertext).toBe(53); // floor(1022 / 19)
  });

  it('rejects bad parameters eagerly with CONFIG_INVALID', async () => {
    const bad = [
      { clipRange: 0, maxClients: 2 },
      { clipRange: -1, maxClients: 2 },
      { clipRange: Infinity, maxClients: 2 },
      { clipRange: 1, maxClients: 0 },
      { clipRange: 1, maxClients: 2, bits: 1 },
      { clipRange: 1, maxClients: 2, keyBits: 256 },
      { clipRange: 1, maxClients: 2 ** 30, bits: 32 },
    ];
    for (const options of bad) expect(codeOf(() => createPackedPaillierParams(options))).toBe('CONFIG_INVALID');
    expect(await codeOfAsync(() => generatePaillierKeys(100))).toBe('CONFIG_INVALID');
  });
});

describe('encrypt → add → decrypt', () => {
  it('sums 3 clients within the derived error bound', async () => {
    const length = 500;
    const vectors = [1, 2, 3].map((seed) => randomVector(length, params.clipRange, seed));
    const encrypted = await Promise.all(vectors.map((v) => encryptVector(keys.publicKey, v, params)));
    encrypted.forEach((e) => {
      expect(e.clipped).toBe(0);
      expect(e.ciphertexts.length).toBe(ciphertextCount(params, length));
    });
    const sum = addEncrypted(
      keys.publicKey,
      addEncrypted(keys.publicKey, encrypted[0].ciphertexts, encrypted[1].ciphertexts),
      encrypted[2].ciphertexts,
    );
    expect(
      sumEncrypted(
        keys.publicKey,
        encrypted.map((e) => e.ciphertexts),
      ).length,
    ).toBe(sum.length);
    const total = await decryptSum(keys.privateKey, sum, params, 3, length);
    expect(total).toBeInstanceOf(Float32Array);
    const bound = sumErrorBound(params, 3);
    let maxError = 0;
    for (let i = 0; i < length; i++)
      maxError = Math.max(maxError, Math.abs(total[i] - (vectors[0][i] + vectors[1][i] + vectors[2][i])));
    expect(maxError).toBeLessThanOrEqual(bound);
    expect(maxError).toBeGreaterThan(0); // quantisation does lose something
  });

  it('gives the same sums with worker threads and a long-lived ParallelEncryptor', async () => {
    const length = 3 * params.slotsPerCiphertext + 1;
    const vectors = [4, 5].map((seed) => randomVector(length, params.clipRange, seed));
    const parallel = new ParallelEncryptor(keys.publicKey, { threads: 2 });
    try {
      const a = await encryptVector(keys.publicKey, vectors[0], params, { encryptor: parallel });
      const b = await encryptVector(keys.publicKey, vectors[1], params, { threads: 2 });
      const sum = sumEncrypted(keys.publicKey, [a.ciphertexts, b.ciphertexts]);
      const inThread = await decryptSum(keys.privateKey, sum, params, 2, length);
      const inWorkers = await decryptSum(keys.privateKey, sum, params, 2, length, { threads: 2 });
      expect(Array.from(inWorkers)).toEqual(Array.from(inThread));
      inThread.forEach((v, i) =>
        expect(Math.abs(v - (vectors[0][i] + vectors[1][i]))).toBeLessThanOrEqual(sumErrorBound(params, 2)),
      );
    } finally {
      await parallel.close();
    }
  });

  it('sums maxClients clients at both ends of the range without overflow', async () => {
    const length = params.slotsPerCiphertext + 2;
    for (const end of [params.clipRange, -params.clipRange]) {
      const v = new Float32Array(length).fill(end);
      const encrypted = await Promise.all(
        Array.from({ length: params.maxClients }, () => encryptVector(keys.publicKey, v, params)),
      );
      const total = await decryptSum(
        keys.privateKey,
        sumEncrypted(
          keys.publicKey,
          encrypted.map((e) => e.ciphertexts),
        ),
        params,
        params.maxClients,
        length,
      );
      total.forEach((s) =>
        expect(Math.abs(s - params.maxClients * end)).toBeLessThanOrEqual(sumErrorBound(params, params.maxClients)),
      );
    }
  });

  it('counts clipped values and decrypts them as ±clipRange', async () => {
    const v = Float32Array.from([0.1, 3, -7, 0.5, -0.5, 0.50001]);
    const { ciphertexts, clipped } = await encryptVector(keys.publicKey, v, params);
    expect(clipped).toBe(3);
    const back = await decryptSum(keys.privateKey, ciphertexts, params, 1, v.length);
    const expected = [0.1, 0.5, -0.5, 0.5, -0.5, 0.5];
    back.forEach((x, i) => expect(Math.abs(x - expected[i])).toBeLessThanOrEqual(sumErrorBound(params, 1)));
  });

  it('randomises: two encryptions of one vector differ but decrypt alike', async () => {
    const v = randomVector(60, 0.5, 9);
    const a = await encryptVector(keys.publicKey, v, params);
    const b = await encryptVector(keys.publicKey, v, params);
    a.ciphertexts.forEach((c, i) => expect(c).not.toBe(b.ciphertexts[i]));
    expect(Array.from(await decryptSum(keys.privateKey, a.ciphertexts, params, 1, 60))).toEqual(
      Array.from(await decryptSum(keys.privateKey, b.ciphertexts, params, 1, 60)),
    );
  });

  it('works end to end with the defaults (2048-bit key)', async () => {
    const defaults = createPackedPaillierParams({ clipRange: 1, maxClients: 100 });
    const big = await generatePaillierKeys();
    expect(big.publicKey.bitLength).toBe(2048);
    const vectors = [21, 22].map((seed) => randomVector(200, 1, seed));
    const encrypted = await Promise.all(vectors.map((v) => encryptVector(big.publicKey, v, defaults)));
    const total = await decryptSum(
      big.privateKey,
      sumEncrypted(
        big.publicKey,
        encrypted.map((e) => e.ciphertexts),
      ),
      defaults,
      2,
      200,
    );
    total.forEach((x, i) =>
      expect(Math.abs(x - (vectors[0][i] + vectors[1][i]))).toBeLessThanOrEqual(sumErrorBound(defaults, 2)),
    );
  });

  it('rejects mismatched keys, counts and ciphertexts', async () => {
    const v = randomVector(100, 0.5, 11);
    const { ciphertexts } = await encryptVector(keys.publicKey, v, params);
    const { publicKey } = keys;
    // key size and key variant
    const params2048 = createPackedPaillierParams({ clipRange: 1, maxClients: 2 });
    expect(await codeOfAsync(() => encryptVector(publicKey, v, params2048))).toBe('CONFIG_INVALID');
    const classic = await generateRandomKeys(1024, false);
    expect(await codeOfAsync(() => encryptVector(classic.publicKey, v, params))).toBe('CONFIG_INVALID');
    // decryptSum arguments
    expect(await codeOfAsync(() => decryptSum(keys.privateKey, ciphertexts, params, 0, 100))).toBe('CONFIG_INVALID');
    expect(await codeOfAsync(() => decryptSum(keys.privateKey, ciphertexts, params, params.maxClients + 1, 100))).toBe(
      'CONFIG_INVALID',
    );
    expect(
      await codeOfAsync(() => decryptSum(keys.privateKey, ciphertexts, params, 1, 100 + params.slotsPerCiphertext)),
    ).toBe('VALIDATION_FAILED');
    expect(await codeOfAsync(() => decryptSum(keys.privateKey, [0n, ...ciphertexts.slice(1)], params, 1, 100))).toBe(
      'VALIDATION_FAILED',
    );
    // the sum of 3 vectors claimed as 1 client: some slot is larger than one client can reach
    const three = sumEncrypted(publicKey, [ciphertexts, ciphertexts, ciphertexts]);
    expect(await codeOfAsync(() => decryptSum(keys.privateKey, three, params, 1, 100))).toBe('VALIDATION_FAILED');
    // a ciphertext of a plaintext with bits above the packed slots
    const stray = [publicKey.encrypt(publicKey.n - 1n), ...ciphertexts.slice(1)];
    expect(await codeOfAsync(() => decryptSum(keys.privateKey, stray, params, 1, 100))).toBe('VALIDATION_FAILED');
    // homomorphic addition
    expect(codeOf(() => addEncrypted(publicKey, ciphertexts, ciphertexts.slice(1)))).toBe('VALIDATION_FAILED');
    expect(codeOf(() => addEncrypted(publicKey, ciphertexts, [publicKey._n2, ...ciphertexts.slice(1)]))).toBe(
      'VALIDATION_FAILED',
    );
    expect(codeOf(() => sumEncrypted(publicKey, []))).toBe('VALIDATION_FAILED');
    // threads
    expect(await codeOfAsync(() => encryptVector(publicKey, v, params, { threads: 0 }))).toBe('CONFIG_INVALID');
  });
});
